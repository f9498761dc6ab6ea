package server

import (
	"context"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// ControlPlane is the agent's own tailnet node's link to its coordination
// server: the port behind which tsnet stays (internal/tailnet's Node implements
// it). Connected returns nil while the node is in a live map poll, the
// only way it learns the keys of nodes it has never seen.
type ControlPlane interface {
	ControlConnected() error
}

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
		"confirm refused: %s is %v of the tailnet since the switch, so no new tailnet node could reach it; it rolls back at the deadline unless the connection comes back and a confirm gets through", s.c.Host, err))
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: agentv1.ReasonControlPlaneDown, Domain: agentv1.ErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}
