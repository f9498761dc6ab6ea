package tailnet

import (
	"context"
	"fmt"
	"time"
)

// homeDERPWait bounds how long Up waits for the home DERP relay.
const homeDERPWait = 2 * time.Second

// readyPoll is how often Up re-checks readiness; the checks are cheap
// in-process reads.
const readyPoll = 5 * time.Millisecond

// waitControl waits until the node is in a live map poll with control.
//
// Why: tsnet (v1.102.5) reports Running as soon as a netmap is installed,
// and a node restarted from persisted state installs one from its disk
// cache before it has even logged in. That cache can be stale or, through
// a tailscale bug that writes a peerless cache on every home DERP change,
// empty; a dial right after such an Up finds no peer, and the caller's
// retry costs a second or more. A live map poll means the netmap came
// from control.
func (n *Node) waitControl(ctx context.Context) error {
	health := n.srv.Sys().HealthTracker.Get()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for !health.GetInPollNetMap() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for a live netmap from control: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// waitHomeDERP waits until the node has picked its home DERP region and
// heard from it, or homeDERPWait passed. Until then, peers' replies sent
// via DERP are dropped by the relay ("peer gone") and the first dial waits
// out a retransmission. Without DERP (none configured or reachable) Up
// still returns, after homeDERPWait.
func (n *Node) waitHomeDERP(ctx context.Context) {
	sys := n.srv.Sys()
	ms, health := sys.MagicSock.Get(), sys.HealthTracker.Get()
	ctx, cancel := context.WithTimeout(ctx, homeDERPWait)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if r := ms.GetLastNetcheckReport(ctx); r != nil && r.PreferredDERP != 0 &&
			!health.GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
			return
		}
		select {
		case <-ctx.Done():
			n.log.Debug("home DERP not connected; continuing without it", "error", ctx.Err())
			return
		case <-tick.C:
		}
	}
}
