package client

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// AgentError turns an error of a call to host's agent into a
// *rollout.AgentError whose Kind follows the gRPC status code and the
// agent's ErrorInfo reason, in one place (the agent's side of the mapping
// is agent/server/errors.go). Context errors and nil pass through.
func AgentError(host string, err error) error {
	if err == nil {
		return nil
	}
	var ae *rollout.AgentError
	if errors.As(err, &ae) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		kind := rollout.ErrUnreachable
		if errors.Is(err, tailnet.ErrUnknownPeer) {
			kind = rollout.ErrNotPeer
		}
		return &rollout.AgentError{Host: host, Kind: kind, Message: HumanRPC(err.Error()), Err: err}
	}
	out := &rollout.AgentError{Host: host, Message: HumanRPC(st.Message()), Err: err}
	switch st.Code() {
	case codes.Unauthenticated:
		out.Kind = rollout.ErrUntrusted
	case codes.PermissionDenied:
		out.Kind = rollout.ErrRefused
	case codes.FailedPrecondition:
		out.Kind = rollout.ErrPrecondition
		if reason(st) == agentv1.ReasonControlPlaneDown {
			out.Kind = rollout.ErrControlDown
		}
	case codes.Unavailable, codes.DeadlineExceeded:
		out.Kind = rollout.ErrUnreachable
		// The dialer's error reaches us as text inside gRPC's status.
		if strings.Contains(st.Message(), "no such host") || strings.Contains(st.Message(), tailnet.ErrUnknownPeer.Error()) {
			out.Kind = rollout.ErrNotPeer
		}
	case codes.Internal, codes.Unknown, codes.Canceled:
		out.Kind = rollout.ErrInterrupted
	case codes.NotFound:
		out.Kind = rollout.ErrNotFound
	case codes.InvalidArgument, codes.ResourceExhausted, codes.AlreadyExists:
		out.Kind = rollout.ErrInvalid
	case codes.Unimplemented:
		out.Kind = rollout.ErrUnsupported
	default:
		out.Kind = rollout.ErrInterrupted
	}
	return out
}

// reason is the agent's ErrorInfo reason in st, "" if none.
func reason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == agentv1.ErrorDomain {
			return info.Reason
		}
	}
	return ""
}

// HumanRPC turns the text of a gRPC status into words for people: gRPC
// wraps transport failures as `connection error: desc = "transport: Error
// while dialing: dial tcp …: connect: connection refused"`, which says
// nothing to someone deploying a host. The innermost cause is kept and the
// common ones are said plainly.
func HumanRPC(msg string) string {
	s := strings.TrimSpace(msg)
	for {
		i := strings.Index(s, `desc = "`)
		if i < 0 {
			break
		}
		inner := s[i+len(`desc = "`):]
		inner = strings.TrimSuffix(inner, `"`)
		s = strings.ReplaceAll(inner, `\"`, `"`)
	}
	for _, p := range []string{"connection error: ", "transport: ", "Error while dialing: ", "error reading server preface: ",
		"authentication handshake failed: ", "rpc error: "} {
		for strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
		}
	}
	lower := strings.ToLower(s)
	switch {
	case strings.Contains(lower, "connection refused"):
		return "connection refused: nothing listens on the agent's port"
	case strings.Contains(lower, "i/o timeout"), strings.Contains(lower, "context deadline exceeded"), strings.Contains(lower, "deadline exceeded"):
		return "no answer in time"
	case strings.Contains(lower, "connection reset by peer"), strings.Contains(lower, "connection closed before server preface"),
		strings.Contains(lower, "broken pipe"), lower == "eof", strings.HasSuffix(lower, ": eof"):
		return "the connection was closed by the other side"
	case strings.Contains(lower, "network is unreachable"), strings.Contains(lower, "no route to host"):
		return "no route to the host"
	case strings.Contains(lower, "http2: frame too large"), strings.Contains(lower, "malformed http response"):
		return "the port does not speak panther's gRPC API"
	}
	return s
}
