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
	// Local: pantherctl builds and serves its own store (not available yet).
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
		return Plan{}, fmt.Errorf("%w: --build-on local is not available yet; use --build-on <host> or --push-to from a host", ErrBuildOn)
	}
	if !slices.Contains(hosts, buildOn) {
		return Plan{}, fmt.Errorf("%w: %q is not one of the hosts deployed (%v); the builder must be deployed too", ErrBuildOn, buildOn, hosts)
	}
	return Plan{RolloutID: rolloutID, Peers: []string{buildOn}, First: buildOn}, nil
}
