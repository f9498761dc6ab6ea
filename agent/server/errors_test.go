package server

import (
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
