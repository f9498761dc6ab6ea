package server

import (
	"context"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ControlPlane is the agent's own tailnet node's link to its coordination
// server: the port behind which tsnet stays (pkg/tailnet's Node implements
// it). Connected returns nil while the node is in a live map poll, the
// only way it learns the keys of nodes it has never seen.
type ControlPlane interface {
	ControlConnected() error
}

// ReasonControlDown is the google.rpc.ErrorInfo reason of a confirm refused
// because the agent is not connected to its coordination server. The
// refusal is FailedPrecondition and may clear (the poll reconnects), so
// pantherctl keeps trying until the deadline; the domain is ErrorDomain.
const ReasonControlDown = "CONTROL_PLANE_DOWN"

// ErrorDomain is the domain of the agent's google.rpc.ErrorInfo details.
const ErrorDomain = "panther.agent.v1"

// checkReach refuses a confirm while the host's own tailnet node has no
// live connection to its coordination server: the operator's connection
// may have survived the switch (a direct path on the same link), but a node
// the host has never seen could not reach it, and once the connection ends
// neither could the operator. Nothing is decided here: the deadline still
// rolls the host back unless a later confirm gets through.
func (s *Server) checkReach(ctx context.Context, id string) error {
	if s.c.Control == nil {
		return nil
	}
	err := s.c.Control.ControlConnected()
	if err == nil {
		return nil
	}
	s.audit(ctx, "refused", "reason", "control plane down", "deployment", id, "error", err.Error())
	st := status.New(codes.FailedPrecondition, fmt.Sprintf(
		"confirm refused: %s has lost its connection to the tailnet's coordination server since the switch (%v), so no new tailnet node could reach it; it rolls back at the deadline unless the connection comes back and a confirm gets through", s.c.Host, err))
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonControlDown, Domain: ErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// IsControlDown reports whether err is the agent's refusal of a confirm
// because its host is not connected to the coordination server.
func IsControlDown(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == ReasonControlDown && info.Domain == ErrorDomain {
			return true
		}
	}
	return false
}
