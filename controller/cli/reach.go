package cli

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/pantheros/panther/internal/tailnet"
)

// freshNodeUpTimeout bounds how long a confirm node may take to join.
const freshNodeUpTimeout = 60 * time.Second

// freshNode is a brand-new, ephemeral tailnet node that pantherctl confirms
// a switch from: a new key in a throwaway state dir, on pantherctl's own
// control server with its own auth and tags. A host learns a new node's key
// only from the coordination server, so a confirm from it proves that the
// switched host still reaches control and accepts nodes it has never seen
// (pantherctl's own node may still get through on a direct path that
// survived the switch). It is started when the agent starts its health
// checks, after the switch has ended: a key registered before a switch cut
// the host off control could have reached the host before the cut.
type freshNode struct {
	c    *CLI
	once sync.Once
	done chan struct{}

	// Set before done closes.
	node *tailnet.Node
	dir  string
	err  error
	up   time.Duration // from start to up

	cancel context.CancelFunc
}

// newFreshNode returns the confirm node of one host's switch, not started
// yet; nil with --via system, where pantherctl has no node of its own to
// clone (the confirm then goes over the machine's tailscaled).
func (c *CLI) newFreshNode() *freshNode {
	if c.g.via != "tsnet" {
		return nil
	}
	return &freshNode{c: c, done: make(chan struct{})}
}

// start joins the tailnet in the background, once.
func (f *freshNode) start() {
	if f == nil {
		return
	}
	f.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), freshNodeUpTimeout)
		f.cancel = cancel
		go func() {
			defer close(f.done)
			t0 := time.Now()
			f.node, f.dir, f.err = f.c.joinFresh(ctx)
			f.up = time.Since(t0)
		}()
	})
}

// joinFresh creates and brings up a new ephemeral node.
func (c *CLI) joinFresh(ctx context.Context) (*tailnet.Node, string, error) {
	dir, err := os.MkdirTemp("", "pantherctl-confirm-")
	if err != nil {
		return nil, "", err
	}
	node, err := tailnet.New(tailnet.Config{
		Hostname:        c.g.hostname + "-confirm",
		StateDir:        dir,
		ControlURL:      c.g.controlURL,
		AuthKeyFile:     c.g.authKeyFile,
		Tags:            splitList(c.g.tags),
		Ephemeral:       true,
		NoLogsNoSupport: c.g.noLogsNoSupport,
	}, c.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	if err := node.Up(ctx); err != nil {
		node.Close()
		os.RemoveAll(dir)
		return nil, "", err
	}
	return node, dir, nil
}

// wait returns the node once it is up (starting it if nothing did).
func (f *freshNode) wait(ctx context.Context) (*tailnet.Node, time.Duration, error) {
	f.start()
	select {
	case <-f.done:
		return f.node, f.up, f.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// close logs the node out (control drops an ephemeral node then), leaves
// the tailnet and removes the state dir.
func (f *freshNode) close() {
	if f == nil {
		return
	}
	started := false
	f.once.Do(func() { close(f.done) }) // never started: nothing to close
	select {
	case <-f.done:
		started = f.node != nil
	default:
		f.cancel()
		<-f.done
		started = f.node != nil
	}
	if started {
		// Gone from the node list at once, not when control times it out.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := f.node.Logout(ctx); err != nil {
			f.c.log.Debug("confirm node logout", "error", err)
		}
		cancel()
		f.node.Close()
	}
	if f.cancel != nil {
		f.cancel()
	}
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// unreachedLine is the one line pantherctl ends with when a switched host
// could not be reached from a new node and rolled back.
func unreachedLine(msg, why string) string {
	s := "could not be reached from a new tailnet node after the switch"
	if why != "" {
		s += " (" + why + ")"
	}
	s += ", and was rolled back"
	if msg != "" {
		s += ": " + msg
	}
	return s
}
