// Package buildplan decides who builds for a rollout (issue 12, build once
// per closure): every intent of one pantherctl run carries the rollout's
// id and its build peers in rollout order; each agent substitutes its
// system from the first peer before it that has or builds it, and builds
// it itself only when none does. --build-on <host> makes that host the
// only build peer (and deploys it first).
package buildplan

import (
	"errors"
	"fmt"
	"slices"
)

// Special --build-on values.
const (
	// Fleet (the default) lets the first host of each distinct system build it.
	Fleet = ""
	// None: every host builds by itself (no rollout id, no peers).
	None = "none"
	// Local: pantherctl builds with its own nix and serves its store from
	// its tailnet node; the caller sets Peers to its own tailnet name.
	Local = "local"
)

// ErrBuildOn: a --build-on value names no host of the rollout.
var ErrBuildOn = errors.New("invalid --build-on")

// Plan is who builds for one rollout.
type Plan struct {
	// RolloutID is shared by every intent of the run ("" = no fleet cache).
	RolloutID string
	// Peers are the tailnet names of the build peers in rollout order.
	Peers []string
	// First is the host to deploy first ("" = keep the order).
	First string
	// Local: pantherctl builds every system and serves them (--build-on local).
	Local bool
}

// New plans a rollout of hosts (tailnet names, in rollout order).
func New(rolloutID string, hosts []string, buildOn string) (Plan, error) {
	switch buildOn {
	case None:
		return Plan{}, nil
	case Fleet:
		if len(hosts) < 2 {
			return Plan{}, nil // nobody to share a build with
		}
		return Plan{RolloutID: rolloutID, Peers: slices.Clone(hosts)}, nil
	case Local:
		return Plan{RolloutID: rolloutID, Local: true}, nil
	}
	if !slices.Contains(hosts, buildOn) {
		return Plan{}, fmt.Errorf("%w: %q is not one of the hosts deployed (%v); the builder must be deployed too", ErrBuildOn, buildOn, hosts)
	}
	return Plan{RolloutID: rolloutID, Peers: []string{buildOn}, First: buildOn}, nil
}
