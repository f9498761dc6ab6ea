package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/deploy"
)

// TestWrongFlakeHostIsRefused: a request for another host's configuration
// is a refusal (pantherctl exit 6) whose message names both attributes.
func TestWrongFlakeHostIsRefused(t *testing.T) {
	t.Parallel()
	err := toStatus(&deploy.WrongFlakeHostError{Requested: "beta", Configured: "alpha"})
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition {
		t.Errorf("code = %v, want FailedPrecondition", st.Code())
	}
	if want := (&deploy.WrongFlakeHostError{Requested: "beta", Configured: "alpha"}).Error(); st.Message() != want {
		t.Errorf("message = %q, want %q", st.Message(), want)
	}
}

// TestNewAgentPendingIsFailedPrecondition: a confirmation reaching an agent
// other than the new system's is refused with FailedPrecondition and says
// that the new agent has not started.
func TestNewAgentPendingIsFailedPrecondition(t *testing.T) {
	t.Parallel()
	err := toStatus(fmt.Errorf("%w: d1 awaits the agent `/new run`", deploy.ErrNewAgentPending))
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "the new agent has not started yet") {
		t.Errorf("status = %v %q, want FailedPrecondition saying the new agent has not started yet", st.Code(), st.Message())
	}
}
