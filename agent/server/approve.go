package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/deploy"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// approvalTimeout is the intent's approval_timeout, or the API's default.
func approvalTimeout(in *agentv1.Intent) time.Duration {
	if d := in.GetApprovalTimeout().AsDuration(); in.GetApprovalTimeout() != nil && d > 0 {
		return d
	}
	return agentv1.DefaultApprovalTimeout
}

// Approve implements AgentServiceServer.
func (s *Server) Approve(ctx context.Context, req *agentv1.ApproveRequest) (*agentv1.ApproveResponse, error) {
	in, err := s.verify(ctx, req.GetEnvelope(), agentv1.Action_ACTION_APPROVE)
	if err != nil {
		return nil, err
	}
	if err := s.c.Engine.Approve(in.DeploymentId, in.ExpectedStorePath, requestedBy(ctx)); err != nil {
		return nil, approvalStatus(err)
	}
	return &agentv1.ApproveResponse{DeploymentId: in.DeploymentId, NewStorePath: in.ExpectedStorePath}, nil
}

// Decline implements AgentServiceServer.
func (s *Server) Decline(ctx context.Context, req *agentv1.DeclineRequest) (*agentv1.DeclineResponse, error) {
	in, err := s.verify(ctx, req.GetEnvelope(), agentv1.Action_ACTION_DECLINE)
	if err != nil {
		return nil, err
	}
	res, err := s.c.Engine.Decline(in.DeploymentId, requestedBy(ctx))
	if err != nil {
		return nil, approvalStatus(err)
	}
	return &agentv1.DeclineResponse{Result: resultToProto(res)}, nil
}

// approvalStatus is toStatus with the ErrorInfo reason of an approval
// refusal, so that the controller tells them apart without reading text.
func approvalStatus(err error) error {
	reason := ""
	switch {
	case errors.Is(err, deploy.ErrApprovalPathMismatch):
		reason = agentv1.ReasonApprovalPathMismatch
	case errors.Is(err, deploy.ErrNotAwaitingApproval):
		reason = agentv1.ReasonNotAwaitingApproval
	default:
		return toStatus(err)
	}
	st := status.New(codes.FailedPrecondition, err.Error())
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: agentv1.ErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}
