package client

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// AwaitApproval marks a switch or boot intent as prompted: the agent stops
// after dry-activate, sends the Summary and AwaitingApproval, and waits for
// Approve or Decline (timeout 0 = agentv1.DefaultApprovalTimeout).
func AwaitApproval(in *agentv1.Intent, timeout time.Duration) {
	in.AwaitApproval = true
	if timeout > 0 {
		in.ApprovalTimeout = durationpb.New(timeout)
	}
}

// Approve lets deployment id, which awaits approval, go on to the switch.
// storePath must be the exact path its Summary/AwaitingApproval named. The
// deployment's further events arrive on its Deploy stream (or Watch).
func (c *Conn) Approve(ctx context.Context, s Signer, id, storePath string) error {
	env, err := s.Sign(&agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_APPROVE, DeploymentId: id, ExpectedStorePath: storePath})
	if err != nil {
		return err
	}
	_, err = c.API.Approve(ctx, &agentv1.ApproveRequest{Envelope: env})
	return ApprovalError(err)
}

// Decline ends deployment id, which awaits approval, with nothing changed,
// and returns its final result (OUTCOME_NOT_APPROVED).
func (c *Conn) Decline(ctx context.Context, s Signer, id string) (*agentv1.Result, error) {
	env, err := s.Sign(&agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_DECLINE, DeploymentId: id})
	if err != nil {
		return nil, err
	}
	resp, err := c.API.Decline(ctx, &agentv1.DeclineRequest{Envelope: env})
	if err != nil {
		return nil, ApprovalError(err)
	}
	return resp.Result, nil
}

// Typed refusals of Approve and Decline; test with errors.Is. The error
// also wraps the gRPC status (status.FromError still works).
var (
	// ErrApprovalPathMismatch: Approve named another store path than the
	// dry-activated one; the deployment keeps waiting.
	ErrApprovalPathMismatch = errors.New("the approved store path is not the dry-activated one")
	// ErrNotAwaitingApproval: the deployment does not (or no longer) await
	// approval.
	ErrNotAwaitingApproval = errors.New("the deployment is not awaiting approval")
)

// ApprovalError turns the agent's FailedPrecondition refusals with an
// ErrorInfo reason into the typed errors above.
func ApprovalError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return err
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != agentv1.ErrorDomain {
			continue
		}
		switch info.Reason {
		case agentv1.ReasonApprovalPathMismatch:
			return &refusal{kind: ErrApprovalPathMismatch, st: err}
		case agentv1.ReasonNotAwaitingApproval:
			return &refusal{kind: ErrNotAwaitingApproval, st: err}
		}
	}
	return err
}

// refusal is a typed agent refusal that keeps its gRPC status.
type refusal struct {
	kind error
	st   error
}

func (r *refusal) Error() string { return r.st.Error() }

// Unwrap returns both the kind and the status error.
func (r *refusal) Unwrap() []error { return []error{r.kind, r.st} }

// GRPCStatus lets status.FromError see the agent's status.
func (r *refusal) GRPCStatus() *status.Status { s, _ := status.FromError(r.st); return s }
