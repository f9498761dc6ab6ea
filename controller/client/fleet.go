package client

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Fleet is the agents of a fleet, reached over a tailnet: it implements
// rollout.Agent (signing each intent, converting to and from the wire
// types, turning gRPC statuses into *rollout.AgentError) and the read-only
// calls the CLI needs (status, generations, deployments, logs). One
// connection per host is kept for requests; Watch and Confirm dial anew.
type Fleet struct {
	// Dialer reaches the agents; required.
	Dialer tailnet.Dialer
	// Port is the agents' gRPC port; required (defaults.AgentPort).
	Port int
	// Signer signs intents; required for the calls that change a host.
	Signer Signer
	// ConfirmVia, if set, returns the route a confirm of host goes over
	// (a brand-new tailnet node); default nil: the confirm dials over
	// Dialer, which proves nothing about newcomers, and says so.
	ConfirmVia func(host rollout.Host) ConfirmDialer
	// Log is the logger; default none.
	Log hclog.Logger
	// Decorate, if set, adds to each deploy intent before it is signed
	// what other packages ship with it (the flake's locked inputs and
	// git revision, controller/inputs); default nil.
	Decorate func(*agentv1.Intent)

	mu    sync.Mutex
	conns map[string]*Conn
}

// ConfirmDialer is a tailnet route for one confirm: a node that comes up
// in the background once Start is called.
type ConfirmDialer interface {
	// Start begins bringing the route up (called once the host starts its
	// health checks).
	Start()
	// Wait waits for the route until ctx ends and returns its dialer, how
	// long it took to come up, or why it could not.
	Wait(ctx context.Context) (tailnet.Dialer, time.Duration, error)
	// Close releases it.
	Close()
}

var _ rollout.Agent = (*Fleet)(nil)

// conn returns the kept connection to host, dialing it the first time.
func (f *Fleet) conn(ctx context.Context, host rollout.Host) (*Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[host.Address()]; ok {
		return c, nil
	}
	c, err := Dial(ctx, f.Dialer, host.Address(), f.Port)
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	if f.conns == nil {
		f.conns = map[string]*Conn{}
	}
	f.conns[host.Address()] = c
	return c, nil
}

// Close closes the kept connections.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// events adapts a watched wire stream to rollout.Events.
type events struct {
	host   string
	st     Stream
	closer io.Closer // a connection of its own, closed at the end
}

func (e *events) Next() (rollout.Event, error) {
	for {
		ev, err := e.st.Recv()
		if err != nil {
			if e.closer != nil {
				e.closer.Close()
			}
			if err == io.EOF {
				return rollout.Event{}, io.EOF
			}
			return rollout.Event{}, AgentError(e.host, err)
		}
		if out, ok := EventFromProto(ev); ok {
			return out, nil
		}
	}
}

// Deploy implements rollout.Agent.
func (f *Fleet) Deploy(ctx context.Context, host rollout.Host, in rollout.Intent) (rollout.Events, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	pin := IntentToProto(host.Address(), in)
	if f.Decorate != nil {
		f.Decorate(pin)
	}
	st, err := c.Deploy(ctx, f.Signer, pin)
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	return &events{host: host.Name, st: st}, nil
}

// Rollback implements rollout.Agent.
func (f *Fleet) Rollback(ctx context.Context, host rollout.Host, in rollout.Intent) (rollout.Events, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	st, err := c.Rollback(ctx, f.Signer, in.DeploymentID, in.Generation, in.ConfirmTimeout)
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	return &events{host: host.Name, st: st}, nil
}

// Watch implements rollout.Agent over a new connection: the kept one may
// have broken with the agent's restart.
func (f *Fleet) Watch(ctx context.Context, host rollout.Host, id string) (rollout.Events, error) {
	c, err := Dial(ctx, f.Dialer, host.Address(), f.Port)
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	st, err := c.Watch(ctx, id)
	if err != nil {
		c.Close()
		return nil, AgentError(host.Name, err)
	}
	return &events{host: host.Name, st: st, closer: c}, nil
}

// Approve implements rollout.Agent: a signed Approve of the exact store
// path; the deployment's events go on on its Deploy stream. The agent's
// refusals stay testable as ErrApprovalPathMismatch and
// ErrNotAwaitingApproval besides their rollout kind (ErrPrecondition).
func (f *Fleet) Approve(ctx context.Context, host rollout.Host, id, storePath string) error {
	c, err := f.conn(ctx, host)
	if err != nil {
		return err
	}
	return AgentError(host.Name, c.Approve(ctx, f.Signer, id, storePath))
}

// Decline implements rollout.Agent.
func (f *Fleet) Decline(ctx context.Context, host rollout.Host, id string) (*rollout.Result, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	res, err := c.Decline(ctx, f.Signer, id)
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	return ResultFromProto(res), nil
}

// ConfirmRoute implements rollout.Agent: over ConfirmVia's new node when
// set, else over Dialer.
func (f *Fleet) ConfirmRoute(host rollout.Host, id string) rollout.ConfirmRoute {
	r := &confirmRoute{f: f, host: host, id: id, dialer: f.Dialer}
	if f.ConfirmVia != nil {
		r.via = f.ConfirmVia(host)
	}
	if r.via != nil {
		r.via.Start()
	}
	return r
}

type confirmRoute struct {
	f      *Fleet
	host   rollout.Host
	id     string
	via    ConfirmDialer
	dialer tailnet.Dialer
}

func (r *confirmRoute) Ready(ctx context.Context) rollout.RouteInfo {
	if r.via == nil {
		return rollout.RouteInfo{Via: "the machine's tailscaled (--via system)", Notes: []rollout.Note{{
			Text: "note: confirming over the machine's tailscaled (--via system), a node " + r.host.Address() + " knows already: this does not prove that a new node can reach it"}}}
	}
	d, up, err := r.via.Wait(ctx)
	if err != nil {
		// Not the host's fault: confirm as before, and say what is not proven.
		return rollout.RouteInfo{Via: "pantherctl's own tailnet node", Notes: []rollout.Note{{
			Text: "warning: could not start a new tailnet node to confirm from (" + rollout.ShortError(AgentError(r.host.Name, err)) + "); confirming over pantherctl's own node, which does not prove that a new node can reach " + r.host.Address()}}}
	}
	r.dialer = d
	return rollout.RouteInfo{Via: "a new tailnet node", Notes: []rollout.Note{{
		Text: "    confirm node joined the tailnet in " + up.Round(time.Millisecond).String(), Quiet: true}}}
}

// Confirm dials anew: a confirm proves that a new connection gets through.
func (r *confirmRoute) Confirm(ctx context.Context) (rollout.Result, error) {
	c, err := Dial(ctx, r.dialer, r.host.Address(), r.f.Port)
	if err != nil {
		return rollout.Result{}, AgentError(r.host.Name, err)
	}
	defer c.Close()
	res, err := c.Confirm(ctx, r.f.Signer, r.id)
	if err != nil {
		return rollout.Result{}, AgentError(r.host.Name, err)
	}
	return *ResultFromProto(res), nil
}

func (r *confirmRoute) Close() {
	if r.via != nil {
		r.via.Close()
	}
}

// Upload is a flake source packed once and uploaded to each host that
// lacks it: it implements rollout.Source.
type Upload struct {
	Fleet *Fleet
	// Open returns a fresh reader of the archive (each upload reads its own).
	Open   func() io.Reader
	Digest string
	Subdir string
	Files  int
	Bytes  int64
	// Then, if set, runs after the source reached the host, over the same
	// connection (uploading the flake's locked inputs); default nil.
	Then func(ctx context.Context, conn *Conn, s Signer, note func(rollout.Note)) error
}

var _ rollout.Source = (*Upload)(nil)

// Prepare implements rollout.Source.
func (u *Upload) Prepare(ctx context.Context, host rollout.Host, note func(rollout.Note)) (rollout.SourceRef, error) {
	c, err := u.Fleet.conn(ctx, host)
	if err != nil {
		return rollout.SourceRef{}, err
	}
	note(rollout.Note{Phase: "upload"})
	t0 := time.Now()
	sent, err := c.Upload(ctx, u.Fleet.Signer, u.Digest, u.Open())
	if err != nil {
		return rollout.SourceRef{}, AgentError(host.Name, err)
	}
	// A refused request (key, peer, replay: refused at the upload or at
	// the request after it) shows the refusal alone, not an upload that
	// seemed to lead somewhere: these lines show with the agent's first event.
	note(rollout.Note{OnceAccepted: true, Text: "==> upload " + shortDigest(u.Digest) + " (" + itoa(int64(u.Files)) + " files, " + itoa(u.Bytes) + " bytes)"})
	if sent == 0 {
		note(rollout.Note{OnceAccepted: true, Text: "    the agent already has this source; nothing sent"})
	} else {
		note(rollout.Note{OnceAccepted: true, Text: "    upload done in " + time.Since(t0).Round(time.Millisecond).String() + " (" + itoa(sent) + " bytes)"})
	}
	if u.Then != nil {
		if err := u.Then(ctx, c, u.Fleet.Signer, note); err != nil {
			return rollout.SourceRef{}, AgentError(host.Name, err)
		}
	}
	return rollout.SourceRef{Digest: u.Digest, Subdir: u.Subdir}, nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
