// Package server is the agent's gRPC service: thin handlers that verify the
// signed envelope, convert proto to domain types, call the deploy engine and
// convert back. Authorization by tailnet identity happens before, in the
// interceptors of internal/tailnet.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/flakeinputs"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/internal/version"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// SystemStatus reports systemd's view of the host.
type SystemStatus interface {
	Status(ctx context.Context) (state string, failed []string, err error)
}

// Sources stores uploaded flake sources by digest.
type Sources interface {
	Has(digest string) bool
	Path(digest string) (string, error)
	Put(ctx context.Context, digest string, r io.Reader, lim archive.Limits) (string, error)
}

// Config holds what the server needs.
type Config struct {
	Host     string
	Verifier *signing.Verifier
	Policy   signing.Policy
	Replay   *signing.ReplayCache
	Engine   *deploy.Engine
	Journal  *journal.Journal
	Sources  Sources
	Limits   archive.Limits
	System   SystemStatus
	// Control, if set, is the agent's own link to the coordination server:
	// a confirm is refused while it is down (reach.go). Default nil: no
	// check.
	Control ControlPlane
	// Inputs, if set, takes uploaded locked flake inputs into the nix
	// store (inputs.go). Default nil: the agent's nix fetches them.
	Inputs Inputs
	// LockCheck, if set, evaluates flake.nix to refuse a source whose
	// flake.lock lacks a declared input. Default nil: no check.
	LockCheck flakeinputs.Evaluator
	Log       hclog.Logger
	Now       func() time.Time // default time.Now
}

// Server implements agentv1.AgentServiceServer.
type Server struct {
	agentv1.UnimplementedAgentServiceServer
	c       Config
	started time.Time
}

var _ agentv1.AgentServiceServer = (*Server)(nil)

// New returns a Server.
func New(c Config) *Server {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
	c.Log = c.Log.Named("rpc")
	return &Server{c: c, started: c.Now()}
}

// verify checks an envelope and returns its intent. Nothing is changed
// unless it succeeds; a nonce is spent only by a fully valid intent.
func (s *Server) verify(ctx context.Context, env *agentv1.SignedEnvelope, allowed ...agentv1.Action) (*agentv1.Intent, error) {
	if env == nil {
		return nil, status.Error(codes.InvalidArgument, "request has no signed envelope: sign it with your panther key")
	}
	if err := s.c.Verifier.Verify(env.KeyId, env.Intent, env.Signature); err != nil {
		s.audit(ctx, "refused", "reason", err.Error())
		return nil, toStatus(err)
	}
	var in agentv1.Intent
	if err := proto.Unmarshal(env.Intent, &in); err != nil {
		return nil, toStatus(fmt.Errorf("%w: intent does not decode: %v", signing.ErrMalformed, err))
	}
	ok := false
	for _, a := range allowed {
		ok = ok || in.Action == a
	}
	want := in.Action.String()
	if !ok {
		want = allowed[0].String()
	}
	now := s.c.Now()
	claims := signing.Claims{
		Host: in.Host, Action: in.Action.String(), Nonce: in.Nonce,
		IssuedAt: in.IssuedAt.AsTime(), ExpiresAt: in.ExpiresAt.AsTime(),
	}
	if in.IssuedAt == nil || in.ExpiresAt == nil {
		claims.IssuedAt, claims.ExpiresAt = time.Time{}, time.Time{}
	}
	if err := s.c.Policy.Check(claims, want, now); err != nil {
		s.audit(ctx, "refused", "reason", err.Error(), "key", env.KeyId)
		return nil, toStatus(err)
	}
	if err := s.c.Replay.Use(in.Nonce, claims.ExpiresAt, now); err != nil {
		s.audit(ctx, "refused", "reason", err.Error(), "key", env.KeyId)
		return nil, toStatus(err)
	}
	s.audit(ctx, "accepted", "action", in.Action.String(), "deployment", in.DeploymentId, "key", env.KeyId)
	return &in, nil
}

func (s *Server) audit(ctx context.Context, what string, kv ...any) {
	id, _ := tailnet.IdentityFromContext(ctx)
	s.c.Log.Info("signed request "+what, append([]any{"peer", id.String()}, kv...)...)
}

// streamEnded logs at debug level that a streaming call ended: who called,
// how long the stream ran and why it ended. A controller that vanished shows
// here as "caller gone" once the transport noticed (see
// tailnet.ServerKeepalive), which is the only sign of it on the agent.
func (s *Server) streamEnded(ctx context.Context, method string, start time.Time, errp *error) {
	kv := []any{"method", method, "peer", requestedBy(ctx), "duration", s.c.Now().Sub(start).Round(time.Millisecond)}
	switch {
	case ctx.Err() != nil:
		kv = append(kv, "ended_by", "caller gone", "cause", context.Cause(ctx))
	case *errp != nil:
		kv = append(kv, "ended_by", "error", "error", *errp)
	default:
		kv = append(kv, "ended_by", "done")
	}
	s.c.Log.Debug("stream ended", kv...)
}

func requestedBy(ctx context.Context) string {
	id, ok := tailnet.IdentityFromContext(ctx)
	if !ok {
		return ""
	}
	return id.String()
}

// HasSource implements AgentServiceServer.
func (s *Server) HasSource(ctx context.Context, req *agentv1.HasSourceRequest) (*agentv1.HasSourceResponse, error) {
	if _, err := archive.ParseDigest(req.Digest); err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.HasSourceResponse{Present: s.c.Sources.Has(req.Digest) && s.sourceIntact(req.Digest)}, nil
}

// UploadSource implements AgentServiceServer.
func (s *Server) UploadSource(stream agentv1.AgentService_UploadSourceServer) (err error) {
	ctx := stream.Context()
	defer s.streamEnded(ctx, "UploadSource", s.c.Now(), &err)
	first, err := stream.Recv()
	if err != nil {
		return toStatus(err)
	}
	in, err := s.verify(ctx, first.GetEnvelope(), agentv1.Action_ACTION_UPLOAD)
	if err != nil {
		return err
	}
	pr, received := chunkReader(stream.Recv)
	p, err := s.c.Sources.Put(ctx, in.SourceDigest, pr, s.c.Limits)
	pr.CloseWithError(errors.New("upload ended"))
	if err != nil {
		s.c.Log.Warn("upload refused", "digest", in.SourceDigest, "error", err)
		return toStatus(err)
	}
	s.c.Log.Info("source stored", "digest", in.SourceDigest, "path", p)
	return stream.SendAndClose(&agentv1.UploadSourceResponse{Digest: in.SourceDigest, BytesReceived: received.Load()})
}

func (s *Server) flakeRef(ctx context.Context, in *agentv1.Intent) (string, error) {
	if !s.c.Sources.Has(in.SourceDigest) {
		return "", fmt.Errorf("%w: %s (upload it first)", deploy.ErrSourceMissing, in.SourceDigest)
	}
	dir, err := s.c.Sources.Path(in.SourceDigest)
	if err != nil {
		return "", err
	}
	if err := nix.CheckSubdir(in.SourceSubdir); err != nil {
		return "", fmt.Errorf("%w: source subdir: %v", deploy.ErrInvalidRequest, err)
	}
	if in.SourceSubdir != "" {
		dir = dir + "/" + in.SourceSubdir
	}
	if err := s.checkSource(ctx, in, dir); err != nil {
		return "", err
	}
	return withRev("path:"+dir, in)
}

// Deploy implements AgentServiceServer.
func (s *Server) Deploy(req *agentv1.DeployRequest, stream agentv1.AgentService_DeployServer) (err error) {
	ctx := stream.Context()
	defer s.streamEnded(ctx, "Deploy", s.c.Now(), &err)
	in, err := s.verify(ctx, req.GetEnvelope(), agentv1.Action_ACTION_BUILD, agentv1.Action_ACTION_DRY_ACTIVATE,
		agentv1.Action_ACTION_SWITCH, agentv1.Action_ACTION_BOOT)
	if err != nil {
		return err
	}
	ref, err := s.flakeRef(ctx, in)
	if err != nil {
		return inputStatus(err)
	}
	sub, err := s.c.Engine.Submit(ctx, s.request(ctx, in, ref, req.GetEnvelope().GetKeyId()))
	if err != nil {
		return toStatus(err)
	}
	return forward(ctx, sub, func(ev *agentv1.DeployEvent) error { return stream.Send(&agentv1.DeployResponse{Event: ev}) })
}

// request turns a verified intent into the engine's request; keyID is the
// id of the trusted key whose signature verify accepted, kept in the
// deployment's journal record.
func (s *Server) request(ctx context.Context, in *agentv1.Intent, ref, keyID string) deploy.Request {
	return deploy.Request{
		ID: in.DeploymentId, Action: actionNames[in.Action], FlakeRef: ref, FlakeAttr: in.FlakeAttr,
		SourceDigest: in.SourceDigest, ExpectedPath: in.ExpectedStorePath,
		ConfirmTimeout: in.ConfirmTimeout.AsDuration(), FailOnWarnings: in.FailOnWarnings,
		ExtraCritical: in.ExtraCriticalUnits, Generation: in.Generation, RequestedBy: requestedBy(ctx),
		InstallBootloader: in.InstallBootloader, Force: in.Force,
		KeyID:         keyID,
		AwaitApproval: in.AwaitApproval, ApprovalTimeout: approvalTimeout(in),
		Source:    sourceInfo(in),
		RolloutID: in.RolloutId, BuildPeers: in.BuildPeers, PushTo: in.PushTo,
	}
}

// HeartbeatInterval is how often an otherwise silent event stream carries a
// heartbeat.
const HeartbeatInterval = 2 * time.Second

// forward streams events until the deployment awaits confirmation or ends.
func forward(ctx context.Context, sub *deploy.Subscription, send func(*agentv1.DeployEvent) error) error {
	beat := func() error {
		return send(&agentv1.DeployEvent{Time: timestamppb.Now(),
			Event: &agentv1.DeployEvent_Heartbeat{Heartbeat: &agentv1.Heartbeat{Interval: durationpb.New(HeartbeatInterval)}}})
	}
	// The first heartbeat tells the controller it may count on them.
	if err := beat(); err != nil {
		return err
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, HeartbeatInterval)
		evs, done, err := sub.Next(nctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if err := beat(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return toStatus(err)
		}
		for i, ev := range evs {
			if err := send(eventToProto(ev)); err != nil {
				return err
			}
			// Awaiting ends the stream only while it is the latest news: a
			// watcher replaying a deployment that went on (rolled back by
			// the dead-man) must get to its result, not stop at a window
			// that is long closed.
			if ev.Kind == deploy.EventResult || (ev.Kind == deploy.EventAwaiting && i == len(evs)-1) {
				return nil
			}
		}
		if done {
			return nil
		}
	}
}

// Confirm implements AgentServiceServer.
func (s *Server) Confirm(ctx context.Context, req *agentv1.ConfirmRequest) (*agentv1.ConfirmResponse, error) {
	in, err := s.verify(ctx, req.GetEnvelope(), agentv1.Action_ACTION_CONFIRM)
	if err != nil {
		return nil, err
	}
	if err := s.checkReach(ctx, in.DeploymentId); err != nil {
		return nil, err
	}
	res, err := s.c.Engine.Confirm(in.DeploymentId, requestedBy(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.ConfirmResponse{Result: resultToProto(res)}, nil
}

// Rollback implements AgentServiceServer.
func (s *Server) Rollback(req *agentv1.RollbackRequest, stream agentv1.AgentService_RollbackServer) (err error) {
	ctx := stream.Context()
	defer s.streamEnded(ctx, "Rollback", s.c.Now(), &err)
	in, err := s.verify(ctx, req.GetEnvelope(), agentv1.Action_ACTION_ROLLBACK)
	if err != nil {
		return err
	}
	sub, err := s.c.Engine.Submit(ctx, s.request(ctx, in, "", req.GetEnvelope().GetKeyId()))
	if err != nil {
		return toStatus(err)
	}
	return forward(ctx, sub, func(ev *agentv1.DeployEvent) error { return stream.Send(&agentv1.RollbackResponse{Event: ev}) })
}

// Watch implements AgentServiceServer.
func (s *Server) Watch(req *agentv1.WatchRequest, stream agentv1.AgentService_WatchServer) (err error) {
	defer s.streamEnded(stream.Context(), "Watch", s.c.Now(), &err)
	sub, err := s.c.Engine.Watch(req.DeploymentId)
	if err != nil {
		return toStatus(err)
	}
	return forward(stream.Context(), sub, func(ev *agentv1.DeployEvent) error { return stream.Send(&agentv1.WatchResponse{Event: ev}) })
}

// ListGenerations implements AgentServiceServer.
func (s *Server) ListGenerations(ctx context.Context, _ *agentv1.ListGenerationsRequest) (*agentv1.ListGenerationsResponse, error) {
	gens, err := s.c.Engine.Generations(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &agentv1.ListGenerationsResponse{}
	for _, g := range gens {
		resp.Generations = append(resp.Generations, &agentv1.Generation{
			Number: g.Number, Created: timestamppb.New(g.Created), Current: g.Current, StorePath: g.Path,
			NixosVersion: g.Version, DeploymentId: g.DeploymentID, Result: g.Result, Reason: g.Reason,
			Failed: g.Failed, SourceRev: g.SourceRev, SourceDirty: g.SourceDirty,
		})
	}
	return resp, nil
}

// Status implements AgentServiceServer.
func (s *Server) Status(ctx context.Context, _ *agentv1.StatusRequest) (*agentv1.StatusResponse, error) {
	st := s.c.Engine.Status(ctx)
	resp := &agentv1.StatusResponse{
		AgentVersion: version.Version, Host: s.c.Host, CurrentStorePath: st.CurrentPath,
		CurrentGeneration: st.CurrentGeneration, NixosVersion: st.Version,
		AgentUptime: durationpb.New(s.c.Now().Sub(s.started).Round(time.Second)),
	}
	if up, err := hostUptime(); err == nil {
		resp.Uptime = durationpb.New(up)
	}
	if s.c.System != nil {
		state, failed, err := s.c.System.Status(ctx)
		if err != nil {
			state = "unknown (" + err.Error() + ")"
		}
		resp.SystemState, resp.FailedUnits = state, failed
	}
	if p := st.Pending; p != nil {
		resp.Pending = &agentv1.PendingDeployment{DeploymentId: p.ID, Deadline: timestamppb.New(p.Deadline), NewStorePath: p.NewPath}
	} else if p := st.Approving; p != nil {
		resp.Pending = &agentv1.PendingDeployment{DeploymentId: p.ID, Deadline: timestamppb.New(p.ApprovalDeadline), NewStorePath: p.NewPath, AwaitingApproval: true}
	}
	if st.Last != nil {
		resp.LastDeployment = recordToProto(st.Last)
	}
	return resp, nil
}

func hostUptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("empty /proc/uptime")
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(sec) * time.Second, nil
}

// ListDeployments implements AgentServiceServer.
func (s *Server) ListDeployments(ctx context.Context, req *agentv1.ListDeploymentsRequest) (*agentv1.ListDeploymentsResponse, error) {
	recs, err := s.c.Engine.Deployments(int(req.Limit))
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &agentv1.ListDeploymentsResponse{}
	for _, r := range recs {
		resp.Deployments = append(resp.Deployments, recordToProto(r))
	}
	return resp, nil
}

// Logs implements AgentServiceServer.
func (s *Server) Logs(req *agentv1.LogsRequest, stream agentv1.AgentService_LogsServer) (err error) {
	ctx := stream.Context()
	defer s.streamEnded(ctx, "Logs", s.c.Now(), &err)
	id := req.DeploymentId
	if id == "" {
		recs, err := s.c.Engine.Deployments(1)
		if err != nil {
			return toStatus(err)
		}
		if len(recs) == 0 {
			return status.Error(codes.NotFound, "this agent has no deployments yet")
		}
		id = recs[0].ID
	}
	rc, err := s.c.Journal.ReadLog(id)
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	buf := make([]byte, 32<<10)
	wait := followPollMin
	idleSince := s.c.Now()
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if err := stream.Send(&agentv1.LogsResponse{DeploymentId: id, Data: append([]byte(nil), buf[:n]...)}); err != nil {
				return err
			}
			wait, idleSince = followPollMin, s.c.Now()
			continue
		}
		if err != nil && err != io.EOF {
			return toStatus(err)
		}
		if !req.Follow {
			return nil
		}
		if rec, err := s.c.Journal.Get(id); err == nil && rec.State.Final() {
			// One last read after the final state, then stop.
			if n, _ := rc.Read(buf); n > 0 {
				stream.Send(&agentv1.LogsResponse{DeploymentId: id, Data: append([]byte(nil), buf[:n]...)})
				continue
			}
			return nil
		}
		if s.c.Now().Sub(idleSince) >= followIdleLimit {
			return status.Errorf(codes.DeadlineExceeded,
				"deployment %s wrote nothing for %v and has not ended; follow it again with 'pantherctl logs --follow'", id, followIdleLimit)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, followPollMax)
	}
}

// A followed log is polled every followPollMin while it grows, backing off
// to followPollMax while it is quiet; a follow ends after followIdleLimit
// without a byte from a deployment that has not ended (the per-peer stream
// cap in internal/tailnet bounds how many are open at once).
const (
	followPollMin   = 200 * time.Millisecond
	followPollMax   = 2 * time.Second
	followIdleLimit = time.Hour
)

// chunkReader turns the chunk messages of an upload stream into a reader;
// received counts the bytes that arrived.
func chunkReader[M interface{ GetChunk() []byte }](recv func() (M, error)) (*io.PipeReader, *atomic.Int64) {
	pr, pw := io.Pipe()
	received := new(atomic.Int64)
	go func() {
		for {
			m, err := recv()
			if err == io.EOF {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			received.Add(int64(len(m.GetChunk())))
			if _, err := pw.Write(m.GetChunk()); err != nil {
				return
			}
		}
	}()
	return pr, received
}
