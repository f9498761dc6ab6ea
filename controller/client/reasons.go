package client

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// IsControlDown reports whether err is the agent's refusal of a confirm
// because its host has no live connection to the tailnet's coordination
// server (FailedPrecondition with ErrorInfo reason
// agentv1.ReasonControlPlaneDown). The refusal may clear before the
// deadline, so a confirm refused this way is worth retrying.
func IsControlDown(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == agentv1.ReasonControlPlaneDown && info.Domain == agentv1.ErrorDomain {
			return true
		}
	}
	return false
}
