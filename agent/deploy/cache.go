package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/pantheros/panther/agent/journal"
)

// FleetCache is build once per closure (internal/nixcache behind it, wired
// in agent/fleetcache.go): the hosts of one rollout agree that the first of
// them in rollout order builds a store path, and the others substitute it
// from that host's tailnet binary cache (nix checks the fleet key's
// signature and the NAR's hash as for any substitute) instead of building
// it again.
type FleetCache interface {
	// OutPath evaluates the installable's out path without building.
	OutPath(ctx context.Context, installable string) (string, error)
	// Evaluating, Building and Done publish where this host stands with
	// the rollout, for the peers after it.
	Evaluating(rollout string)
	Building(rollout, storePath string)
	Done(rollout, storePath string, ok bool)
	// Choose returns the peer (of peers, in order) to substitute storePath
	// from, waiting while one builds it; "" means build it here.
	Choose(ctx context.Context, rollout, storePath string, peers []string, logf func(string, ...any)) (string, error)
	// Substitute makes storePath valid here from peer's cache and returns
	// the bytes that came over the tailnet.
	Substitute(ctx context.Context, peer, storePath string, onLine func(string)) (int64, error)
}

// peersBefore returns the build peers before host in rollout order: all of
// them when host is not among them (--build-on names another host).
func peersBefore(peers []string, host string) []string {
	if i := slices.Index(peers, host); i >= 0 {
		return peers[:i]
	}
	return peers
}

// pusher is the optional part of Nix that copies a closure to another store.
type pusher interface {
	CopyTo(ctx context.Context, uri, storePath string, onLine func(string)) error
}

// validateFleetCache refuses build peers and a push target that nix would
// read as something else (an option, several arguments).
func validateFleetCache(req *Request) error {
	bad := func(s string) bool {
		return s == "" || strings.HasPrefix(s, "-") || len(s) > 1024 ||
			strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
	}
	if req.PushTo != "" && bad(req.PushTo) {
		return fmt.Errorf("%w: push target %q is not a Nix store URI", ErrInvalidRequest, req.PushTo)
	}
	for _, p := range req.BuildPeers {
		if bad(p) || strings.ContainsAny(p, "/:?#@") {
			return fmt.Errorf("%w: build peer %q is not a tailnet host name", ErrInvalidRequest, p)
		}
	}
	if len(req.BuildPeers) > 0 && req.RolloutID == "" {
		return fmt.Errorf("%w: build peers without a rollout id", ErrInvalidRequest)
	}
	if req.RolloutID != "" && !journal.ValidID(req.RolloutID) {
		return fmt.Errorf("%w: rollout id %q (letters, digits, . _ - only)", ErrInvalidRequest, req.RolloutID)
	}
	return nil
}

// fromPeers runs before the build. It returns the system's store path when
// it substituted it from a build peer (the build is then skipped: the path
// is valid here), and what runs after the build: the fleet cache's
// bookkeeping (beforeBuild), then, when this host built the system itself,
// the push to the request's store (--push-to).
func (d *deployment) fromPeers(ctx context.Context, req Request, installable string) (string, func(string, error)) {
	substituted, finish := d.beforeBuild(ctx, req, installable)
	return substituted, func(p string, err error) {
		finish(p, err)
		if err != nil || req.PushTo == "" || d.rec.SubstitutedFrom != "" {
			return
		}
		pu, ok := d.e.nix.(pusher)
		if !ok {
			d.emit(Event{Kind: EventWarning, Line: "--push-to: this agent's nix cannot copy to another store"})
			return
		}
		onLine := func(l string) { d.emit(Event{Kind: EventLog, Phase: PhaseBuild, Line: l}) }
		if err := pu.CopyTo(ctx, req.PushTo, p, onLine); err != nil {
			// The system is built and valid here: the deployment goes on,
			// the operator sees that the cache did not get it.
			d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("pushing %s to %s failed: %v", p, req.PushTo, err)})
			return
		}
		d.logf(PhaseBuild, "pushed %s to %s", p, req.PushTo)
	}
}

// beforeBuild runs before the build: with a fleet cache and a rollout it
// substitutes the system from the first build peer that has or builds it,
// so that the build that follows finds it valid and builds nothing. Any
// failure here only means this host builds by itself. The returned func
// publishes the build's outcome to the peers after this host.
func (d *deployment) beforeBuild(ctx context.Context, req Request, installable string) (string, func(string, error)) {
	c := d.e.cache
	// A request that names its path follows this host's own dry-activate
	// of it: the path is here already.
	if c == nil || req.RolloutID == "" || len(req.BuildPeers) == 0 || req.ExpectedPath != "" {
		return "", func(string, error) {}
	}
	rollout := req.RolloutID
	logf := func(format string, args ...any) { d.logf(PhaseBuild, "fleet cache: "+format, args...) }
	c.Evaluating(rollout)
	out, err := d.outPath(ctx, c, installable)
	if err != nil {
		c.Done(rollout, "", false)
		logf("cannot evaluate the out path (%v); building here", err)
		return "", func(string, error) {}
	}
	done := func(p string, err error) {
		if p == "" {
			p = out
		}
		c.Done(rollout, p, err == nil)
	}
	peers := peersBefore(req.BuildPeers, d.e.opts.Host)
	if len(peers) == 0 {
		c.Building(rollout, out)
		logf("first build peer of rollout %s: building %s here", rollout, out)
		return "", done
	}
	peer, err := c.Choose(ctx, rollout, out, peers, logf)
	c.Building(rollout, out)
	switch {
	case err != nil:
		logf("asking the build peers: %v; building here", err)
	case peer == "":
		logf("no build peer has or builds %s; building here", out)
	default:
		n, err := c.Substitute(ctx, peer, out, func(l string) { d.emit(Event{Kind: EventLog, Phase: PhaseBuild, Line: l}) })
		if err != nil {
			logf("substituting from %s failed (%v); building here", peer, err)
			break
		}
		d.rec.SubstitutedFrom = peer
		logf("substituted %s from %s (%s over the tailnet)", out, peer, byteCount(n))
		return out, done
	}
	return "", done
}

func byteCount(n int64) string {
	return fmt.Sprintf("%d bytes", n)
}

// outPath is the system's out path: the deploy's one evaluation knew it
// already; only an engine without it evaluates the installable again.
func (d *deployment) outPath(ctx context.Context, c FleetCache, installable string) (string, error) {
	if d.eval != nil && d.eval.OutPath != "" {
		return d.eval.OutPath, nil
	}
	return c.OutPath(ctx, installable)
}
