// Package simfleet is a simulated fleet for measuring the controller at
// scale: N fake agents, each a gRPC server on its own loopback port that
// implements the agent's API (proto/panther/agent/v1) with a scripted,
// memory-light behaviour — no nix, no systemd, no tailnet, no signature
// checks — and a Dialer that reaches them by host name, so that the real
// pantherctl orchestration runs against a thousand hosts on one machine.
//
// A fake agent answers HasSource/UploadSource (it keeps the digests it
// received), runs a Deploy as the real agent reports one (validate, build,
// dry-activate with a summary, then switch and health, then awaiting
// confirmation) sleeping the Script's durations, and confirms on Confirm.
// It is not a test double for the agent's logic; it is load.
package simfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Script is what every fake agent does and how long each step takes.
type Script struct {
	// Build, DryActivate, Switch and Health are how long each phase takes.
	// Default 0 each (the phase reports at once).
	Build, DryActivate, Switch, Health time.Duration
	// ConfirmWindow is the deadline the agent announces when it awaits
	// confirmation. Default 60 s.
	ConfirmWindow time.Duration
}

// HeartbeatInterval is how often a fake agent sends a heartbeat while a
// phase runs, as the real agent does.
const HeartbeatInterval = 2 * time.Second

// HostTime is the agent-side time of one switch deployment: the sum of the
// phases.
func (s Script) HostTime() time.Duration { return s.Build + s.DryActivate + s.Switch + s.Health }

// Counters count what the fleet was asked, across all agents.
type Counters struct {
	Uploads, UploadBytes, Deploys, Confirms, Watches atomic.Int64
}

// Fleet is a running simulated fleet.
type Fleet struct {
	// Addrs maps each host name to its agent's loopback address.
	Addrs map[string]string
	// Count counts the requests served.
	Count *Counters

	servers []*grpc.Server
	wg      sync.WaitGroup
}

// Start starts one fake agent per host, each on its own 127.0.0.1 port.
func Start(hosts []string, s Script) (*Fleet, error) {
	if s.ConfirmWindow == 0 {
		s.ConfirmWindow = 60 * time.Second
	}
	f := &Fleet{Addrs: make(map[string]string, len(hosts)), Count: &Counters{}}
	for _, h := range hosts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("simfleet: listen for %s: %w", h, err)
		}
		srv := grpc.NewServer()
		agentv1.RegisterAgentServiceServer(srv, &agent{host: h, script: s, count: f.Count})
		f.servers = append(f.servers, srv)
		f.Addrs[h] = ln.Addr().String()
		f.wg.Add(1)
		go func() { // owned by f: Close stops it
			defer f.wg.Done()
			srv.Serve(ln)
		}()
	}
	return f, nil
}

// Close stops every agent.
func (f *Fleet) Close() {
	for _, s := range f.servers {
		s.Stop()
	}
	f.wg.Wait()
}

// Dialer reaches the fleet's agents by host name: "web1:7443" dials web1's
// loopback address (the port is ignored). It satisfies internal/tailnet's
// Dialer.
type Dialer struct {
	Addrs map[string]string
	d     net.Dialer
}

// Dial connects to the agent of addr's host.
func (d *Dialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	a, ok := d.Addrs[host]
	if !ok {
		return nil, fmt.Errorf("simfleet: no host %q", host)
	}
	return d.d.DialContext(ctx, network, a)
}

// agent is one fake agent. Its state is a few strings per deployment.
type agent struct {
	agentv1.UnimplementedAgentServiceServer
	host   string
	script Script
	count  *Counters

	mu      sync.Mutex
	sources map[string]bool
	results map[string]*agentv1.Result // by deployment id
	gen     int64
}

func (a *agent) HasSource(ctx context.Context, req *agentv1.HasSourceRequest) (*agentv1.HasSourceResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &agentv1.HasSourceResponse{Present: a.sources[req.Digest]}, nil
}

func (a *agent) UploadSource(st agentv1.AgentService_UploadSourceServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	in, err := intent(first.GetEnvelope())
	if err != nil {
		return err
	}
	var n int64
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n += int64(len(m.GetChunk()))
	}
	a.mu.Lock()
	if a.sources == nil {
		a.sources = map[string]bool{}
	}
	a.sources[in.SourceDigest] = true
	a.mu.Unlock()
	a.count.Uploads.Add(1)
	a.count.UploadBytes.Add(n)
	return st.SendAndClose(&agentv1.UploadSourceResponse{Digest: in.SourceDigest, BytesReceived: n})
}

func intent(env *agentv1.SignedEnvelope) (*agentv1.Intent, error) {
	if env == nil {
		return nil, status.Error(codes.InvalidArgument, "no envelope")
	}
	in := &agentv1.Intent{}
	if err := proto.Unmarshal(env.Intent, in); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "intent: %v", err)
	}
	return in, nil
}

func (a *agent) Deploy(req *agentv1.DeployRequest, st agentv1.AgentService_DeployServer) error {
	in, err := intent(req.GetEnvelope())
	if err != nil {
		return err
	}
	a.count.Deploys.Add(1)
	ctx := st.Context()
	id := in.DeploymentId
	send := func(ev *agentv1.DeployEvent) error {
		ev.Time, ev.DeploymentId = timestamppb.Now(), id
		return st.Send(&agentv1.DeployResponse{Event: ev})
	}
	phase := func(p agentv1.Phase, d time.Duration) error {
		if err := send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_PhaseStarted{PhaseStarted: &agentv1.PhaseStarted{Phase: p}}}); err != nil {
			return err
		}
		if d > 0 {
			// As the real agent: a heartbeat every HeartbeatInterval while
			// the phase runs, or the controller calls the stream stalled.
			t := time.NewTimer(d)
			hb := time.NewTicker(HeartbeatInterval)
		wait:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					hb.Stop()
					return ctx.Err()
				case <-hb.C:
					if err := send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Heartbeat{Heartbeat: &agentv1.Heartbeat{Interval: durationpb.New(HeartbeatInterval)}}}); err != nil {
						t.Stop()
						hb.Stop()
						return err
					}
				case <-t.C:
					hb.Stop()
					break wait
				}
			}
		}
		return send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_PhaseFinished{PhaseFinished: &agentv1.PhaseFinished{Phase: p, Ok: true, Elapsed: durationpb.New(d)}}})
	}
	if err := send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Heartbeat{Heartbeat: &agentv1.Heartbeat{Interval: durationpb.New(HeartbeatInterval)}}}); err != nil {
		return err
	}
	newPath := "/nix/store/00000000000000000000000000000000-nixos-system-" + a.host + "-sim"
	if err := phase(agentv1.Phase_PHASE_VALIDATE, 0); err != nil {
		return err
	}
	if err := phase(agentv1.Phase_PHASE_BUILD, a.script.Build); err != nil {
		return err
	}
	if in.Action == agentv1.Action_ACTION_BUILD {
		return a.end(send, id, &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_BUILT, StorePath: newPath})
	}
	if err := phase(agentv1.Phase_PHASE_DRY_ACTIVATE, a.script.DryActivate); err != nil {
		return err
	}
	if err := send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Summary{Summary: &agentv1.Summary{
		CurrentStorePath: "/nix/store/11111111111111111111111111111111-nixos-system-" + a.host + "-sim",
		NewStorePath:     newPath, CurrentGeneration: a.generation(), WouldRestart: []string{"sim.service"},
	}}}); err != nil {
		return err
	}
	if in.Action == agentv1.Action_ACTION_DRY_ACTIVATE {
		return a.end(send, id, &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_DRY_ACTIVATED, StorePath: newPath})
	}
	if err := phase(agentv1.Phase_PHASE_SWITCH, a.script.Switch); err != nil {
		return err
	}
	if err := phase(agentv1.Phase_PHASE_HEALTH, a.script.Health); err != nil {
		return err
	}
	if err := send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Health{Health: &agentv1.HealthResult{Name: "systemd", Ok: true}}}); err != nil {
		return err
	}
	a.mu.Lock()
	a.gen++
	gen := a.gen
	if a.results == nil {
		a.results = map[string]*agentv1.Result{}
	}
	a.results[id] = &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_AWAITING_CONFIRMATION, StorePath: newPath, Generation: gen}
	a.mu.Unlock()
	return send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_AwaitingConfirmation{AwaitingConfirmation: &agentv1.AwaitingConfirmation{
		Deadline: timestamppb.New(time.Now().Add(a.script.ConfirmWindow)), NewStorePath: newPath, NewGeneration: gen}}})
}

func (a *agent) generation() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// end records and sends a deployment's result.
func (a *agent) end(send func(*agentv1.DeployEvent) error, id string, res *agentv1.Result) error {
	a.mu.Lock()
	if a.results == nil {
		a.results = map[string]*agentv1.Result{}
	}
	a.results[id] = res
	a.mu.Unlock()
	return send(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Result{Result: res}})
}

func (a *agent) Confirm(ctx context.Context, req *agentv1.ConfirmRequest) (*agentv1.ConfirmResponse, error) {
	in, err := intent(req.GetEnvelope())
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	res, ok := a.results[in.DeploymentId]
	if !ok || res.Outcome != agentv1.Outcome_OUTCOME_AWAITING_CONFIRMATION {
		return nil, status.Errorf(codes.FailedPrecondition, "deployment %s is not awaiting confirmation", in.DeploymentId)
	}
	res = &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_CONFIRMED, StorePath: res.StorePath, Generation: res.Generation, Message: "confirmed"}
	a.results[in.DeploymentId] = res
	a.count.Confirms.Add(1)
	return &agentv1.ConfirmResponse{Result: res}, nil
}

func (a *agent) Watch(req *agentv1.WatchRequest, st agentv1.AgentService_WatchServer) error {
	a.count.Watches.Add(1)
	a.mu.Lock()
	res, ok := a.results[req.DeploymentId]
	a.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "deployment %s not found", req.DeploymentId)
	}
	return st.Send(&agentv1.WatchResponse{Event: &agentv1.DeployEvent{Time: timestamppb.Now(), DeploymentId: req.DeploymentId,
		Event: &agentv1.DeployEvent_Result{Result: res}}})
}
