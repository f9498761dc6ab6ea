package tailnet

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// RecordingWhoIs is a [WhoIser] for tests: it answers from a fixed set of
// identities, keyed by their Addr, and records every address asked about.
type RecordingWhoIs struct {
	mu    sync.Mutex
	peers map[netip.Addr]Identity
	err   error
	calls []string
}

// NewRecordingWhoIs returns a fake knowing peers (by Identity.Addr).
func NewRecordingWhoIs(peers ...Identity) *RecordingWhoIs {
	r := &RecordingWhoIs{peers: make(map[netip.Addr]Identity)}
	for _, p := range peers {
		r.peers[p.Addr] = p
	}
	return r
}

// FailWith makes every later WhoIs return err (nil restores answers).
func (r *RecordingWhoIs) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// WhoIs records remoteAddr and answers from the known peers.
func (r *RecordingWhoIs) WhoIs(ctx context.Context, remoteAddr string) (Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, remoteAddr)
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	if r.err != nil {
		return Identity{}, r.err
	}
	ip, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s", ErrUnknownPeer, remoteAddr)
	}
	id, ok := r.peers[ip.Addr().Unmap()]
	if !ok {
		return Identity{}, fmt.Errorf("%w: %s", ErrUnknownPeer, remoteAddr)
	}
	return id, nil
}

// Calls returns the addresses asked about, in order.
func (r *RecordingWhoIs) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}
