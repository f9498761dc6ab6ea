package tailnet

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"tailscale.com/client/local"
	"tailscale.com/tailcfg"
)

// Why dials wait for a disco pong: a node restarted from persisted state
// keeps its node key but has a new disco key. When a peer learns the new
// disco key from control it resets its WireGuard session with this node
// (tailscale v1.102.5, LocalBackend → Engine.ResetDevicePeer). If this
// node's first handshake reaches the peer before that netmap update, the
// session is established and then thrown away by the peer; this node keeps
// sending into it until WireGuard gives up after 15 s and rekeys (we
// measured 21 s to the first RPC). A peer answers disco pings only from
// disco keys it already knows, so a pong proves the reset is behind us.
// The same wait covers a fresh node whose peers have not yet heard of it.
const (
	// peerPingTimeout bounds one disco ping attempt.
	peerPingTimeout = 250 * time.Millisecond
	// peerConfirmedFor is how long a pong vouches for a peer; a peer that
	// restarted since then is re-checked on the next dial.
	peerConfirmedFor = 30 * time.Second
)

// peerGate remembers which peers recently answered a disco ping.
type peerGate struct {
	mu        sync.Mutex
	confirmed map[netip.Addr]time.Time
}

func newPeerGate() *peerGate {
	return &peerGate{confirmed: make(map[netip.Addr]time.Time)}
}

// await pings ip over disco until it answers, at most peerWait; it never
// fails the dial: a peer that cannot answer disco (e.g. not a Tailscale
// node) is dialed anyway once the wait is over. It reports whether the
// peer answered.
func (g *peerGate) await(ctx context.Context, lc *local.Client, ip netip.Addr) bool {
	g.mu.Lock()
	at, ok := g.confirmed[ip]
	g.mu.Unlock()
	if ok && time.Since(at) < peerConfirmedFor {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, peerWait)
	defer cancel()
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, peerPingTimeout)
		res, err := lc.Ping(pctx, ip, tailcfg.PingDisco)
		pcancel()
		if err == nil && res != nil && res.Err == "" {
			g.mu.Lock()
			g.confirmed[ip] = time.Now()
			g.mu.Unlock()
			return true
		}
		if err == nil && res != nil && res.Err != "" {
			// An immediate answer with an error (no such peer, local
			// address): waiting will not help.
			return false
		}
	}
	return false
}
