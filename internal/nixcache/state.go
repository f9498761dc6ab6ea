package nixcache

import (
	"sync"
	"time"
)

// BuildState is where a host stands with a rollout's store path, as its
// cache answers GET /panther/build-state/<rollout>/<hash>.
type BuildState string

// Build states.
const (
	// StateHave: the path is valid in the host's store: substitute it.
	StateHave BuildState = "have"
	// StateBuilding: the host builds (or substitutes) this path now: wait.
	StateBuilding BuildState = "building"
	// StateEvaluating: the host works on the rollout but does not know its
	// path yet (evaluating, or waiting for its own peers): wait.
	StateEvaluating BuildState = "evaluating"
	// StateUnknown: the host has not started the rollout (yet): wait, bounded.
	StateUnknown BuildState = "unknown"
	// StateOther: the host's rollout builds another path: skip it.
	StateOther BuildState = "other"
	// StateFailed: the host's build of the rollout failed: skip it.
	StateFailed BuildState = "failed"
)

// Coordinator keeps this host's build state per rollout for its peers. It is
// safe for concurrent use.
type Coordinator struct {
	mu    sync.Mutex
	items map[string]*rolloutState
	now   func() time.Time
}

type rolloutState struct {
	hash    string // "" while evaluating
	state   BuildState
	updated time.Time
}

// keepStates is how long a finished rollout's state is kept.
const keepStates = time.Hour

// NewCoordinator returns an empty Coordinator.
func NewCoordinator() *Coordinator {
	return &Coordinator{items: map[string]*rolloutState{}, now: time.Now}
}

func (c *Coordinator) set(rollout, hash string, st BuildState) {
	if rollout == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for id, it := range c.items {
		if now.Sub(it.updated) > keepStates {
			delete(c.items, id)
		}
	}
	c.items[rollout] = &rolloutState{hash: hash, state: st, updated: now}
}

// Evaluating records that the host works on rollout and does not know its path yet.
func (c *Coordinator) Evaluating(rollout string) { c.set(rollout, "", StateEvaluating) }

// Building records that the host builds (or fetches) storePath for rollout.
func (c *Coordinator) Building(rollout, storePath string) {
	c.set(rollout, HashPart(storePath), StateBuilding)
}

// Done records that the host's work on rollout ended: with ok, storePath
// is valid (the cache then answers from the store); without, its peers
// build by themselves.
func (c *Coordinator) Done(rollout, storePath string, ok bool) {
	st := StateHave
	if !ok {
		st = StateFailed
	}
	c.set(rollout, HashPart(storePath), st)
}

// State answers a peer asking about hash in rollout; have says whether the
// store has the path.
func (c *Coordinator) State(rollout, hash string, have bool) BuildState {
	if have {
		return StateHave
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[rollout]
	switch {
	case !ok:
		return StateUnknown
	case it.state == StateEvaluating:
		return StateEvaluating
	case it.state == StateFailed:
		return StateFailed
	case it.hash != hash:
		return StateOther
	case it.state == StateBuilding:
		return StateBuilding
	}
	// Done with this very path but the store lost it (collected): skip.
	return StateFailed
}
