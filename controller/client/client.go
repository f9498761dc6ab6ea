// Package client is the controller's side of the agent API: it dials an
// agent over the tailnet, signs intents with the operator's key, uploads
// sources and follows deployments.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/defaults"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// IntentLifetime is how long a signed intent stays valid.
const IntentLifetime = defaults.IntentLifetime

// Signer turns intents into signed envelopes.
type Signer struct {
	Key ed25519.PrivateKey
	Now func() time.Time // default time.Now
}

// Sign fills nonce and validity and signs the intent.
func (s Signer) Sign(in *agentv1.Intent) (*agentv1.SignedEnvelope, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	if len(in.Nonce) == 0 {
		in.Nonce = make([]byte, 16)
		if _, err := rand.Read(in.Nonce); err != nil {
			return nil, err
		}
	}
	if in.IssuedAt == nil {
		in.IssuedAt = timestamppb.New(t)
	}
	if in.ExpiresAt == nil {
		in.ExpiresAt = timestamppb.New(t.Add(IntentLifetime))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	if err != nil {
		return nil, err
	}
	id, sig := signing.Sign(s.Key, b)
	return &agentv1.SignedEnvelope{KeyId: id, Intent: b, Signature: sig}, nil
}

// NewDeploymentID returns a sortable, unique deployment id.
func NewDeploymentID(now time.Time) string { return rollout.NewDeploymentID(now) }

// Conn is a connection to one agent.
type Conn struct {
	Host string
	cc   *grpc.ClientConn
	API  agentv1.AgentServiceClient
}

// Dial opens a new connection to host's agent through d. Every call opens a
// fresh tailnet connection: Confirm relies on that to prove the new system
// still lets the operator in.
func Dial(ctx context.Context, d tailnet.Dialer, host string, port int) (*Conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	cc, err := grpc.NewClient(tailnet.Target(addr), tailnet.DialOptions(d)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	cc.Connect()
	return &Conn{Host: host, cc: cc, API: agentv1.NewAgentServiceClient(cc)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.cc.Close() }

// Upload sends the archive in r unless the agent already holds digest. It
// returns the bytes sent (0 when the agent had it).
func (c *Conn) Upload(ctx context.Context, s Signer, digest string, r io.Reader) (int64, error) {
	has, err := c.API.HasSource(ctx, &agentv1.HasSourceRequest{Digest: digest})
	if err != nil {
		return 0, err
	}
	if has.Present {
		return 0, nil
	}
	env, err := s.Sign(&agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_UPLOAD, SourceDigest: digest})
	if err != nil {
		return 0, err
	}
	stream, err := c.API.UploadSource(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&agentv1.UploadSourceRequest{Msg: &agentv1.UploadSourceRequest_Envelope{Envelope: env}}); err != nil {
		return 0, err
	}
	sent, err := sendChunks(r, func(chunk []byte) error {
		return stream.Send(&agentv1.UploadSourceRequest{Msg: &agentv1.UploadSourceRequest_Chunk{Chunk: chunk}})
	})
	if err != nil {
		return sent, err
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return sent, err
	}
	return sent, nil
}

// sendChunks sends r through send in chunks of 256 KiB and returns the
// bytes sent. A failed send ends it without an error: the server ended
// the stream, and the caller's CloseAndRecv has its reason.
func sendChunks(r io.Reader, send func(chunk []byte) error) (int64, error) {
	buf := make([]byte, 256<<10)
	var sent int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := send(append([]byte(nil), buf[:n]...)); err != nil {
				return sent, nil
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			return sent, nil
		}
		if rerr != nil {
			return sent, rerr
		}
	}
}

// Stream is a server stream of deploy events.
type Stream interface {
	Recv() (*agentv1.DeployEvent, error)
}

// eventMsg is a response message that carries one deploy event; the
// Deploy, Rollback and Watch streams all send one.
type eventMsg interface {
	GetEvent() *agentv1.DeployEvent
}

// recvEvents adapts any of the three event streams to one receive func.
func recvEvents[M eventMsg](st interface{ Recv() (M, error) }) func() (*agentv1.DeployEvent, error) {
	return func() (*agentv1.DeployEvent, error) {
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetEvent(), nil
	}
}

// Deploy starts a signed deployment and returns its event stream.
func (c *Conn) Deploy(ctx context.Context, s Signer, in *agentv1.Intent) (Stream, error) {
	in.Host = c.Host
	env, err := s.Sign(in)
	if err != nil {
		return nil, err
	}
	return watch(ctx, func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error) {
		st, err := c.API.Deploy(ctx, &agentv1.DeployRequest{Envelope: env})
		if err != nil {
			return nil, err
		}
		return recvEvents(st), nil
	})
}

// Rollback starts a signed rollback to generation (0 = previous).
func (c *Conn) Rollback(ctx context.Context, s Signer, id string, generation int64, confirm time.Duration) (Stream, error) {
	in := &agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_ROLLBACK, DeploymentId: id, Generation: generation}
	if confirm > 0 {
		in.ConfirmTimeout = durationpb.New(confirm)
	}
	env, err := s.Sign(in)
	if err != nil {
		return nil, err
	}
	return watch(ctx, func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error) {
		st, err := c.API.Rollback(ctx, &agentv1.RollbackRequest{Envelope: env})
		if err != nil {
			return nil, err
		}
		return recvEvents(st), nil
	})
}

// Watch follows a deployment that is already running.
func (c *Conn) Watch(ctx context.Context, id string) (Stream, error) {
	return watch(ctx, func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error) {
		st, err := c.API.Watch(ctx, &agentv1.WatchRequest{DeploymentId: id})
		if err != nil {
			return nil, err
		}
		return recvEvents(st), nil
	})
}

// Confirm sends a signed confirmation for deployment id.
func (c *Conn) Confirm(ctx context.Context, s Signer, id string) (*agentv1.Result, error) {
	env, err := s.Sign(&agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_CONFIRM, DeploymentId: id})
	if err != nil {
		return nil, err
	}
	resp, err := c.API.Confirm(ctx, &agentv1.ConfirmRequest{Envelope: env})
	if err != nil {
		return nil, err
	}
	return resp.Result, nil
}
