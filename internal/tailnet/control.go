package tailnet

import (
	"context"
	"errors"
	"fmt"
)

// ErrControlDown means the node has no live map poll with its coordination
// server: it learns no new peer (a brand-new node cannot reach it) until the
// poll is back.
var ErrControlDown = errors.New("not connected to the coordination server")

// ControlConnected returns nil while the node is in a live map poll with
// its coordination server (the long poll through which it learns new
// peers' keys), else an error wrapping [ErrControlDown]. It is tsnet's
// health tracker's view (health.Tracker.GetInPollNetMap): it turns false as
// soon as the poll's connection fails; a connection that silently stops
// carrying packets counts as live until tailscale's own poll timeout ends
// it.
func (n *Node) ControlConnected() error {
	n.mu.Lock()
	started := n.started && !n.closed
	n.mu.Unlock()
	if !started {
		return fmt.Errorf("%w: the node is not running", ErrControlDown)
	}
	if !n.srv.Sys().HealthTracker.Get().GetInPollNetMap() {
		return ErrControlDown
	}
	return nil
}

// Logout logs the node out of its coordination server: an ephemeral node is
// removed at once instead of lingering in the tailnet's node list until
// control notices it went offline. The node stays usable only for Close.
func (n *Node) Logout(ctx context.Context) error {
	n.mu.Lock()
	started := n.started && !n.closed
	n.mu.Unlock()
	if !started {
		return nil
	}
	if err := n.lc.Logout(ctx); err != nil {
		return fmt.Errorf("tailnet logout: %w", err)
	}
	return nil
}
