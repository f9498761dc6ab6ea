package cli

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/tailnet"
)

func TestRPCErrorNamesUnknownPeer(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "peer not in the netmap",
			// What gRPC makes of the tailnet dialer's error.
			err:  status.Error(codes.Unavailable, fmt.Sprintf("connection error: desc = \"transport: Error while dialing: tailnet dial ghost:7443: %v: no peer \\\"ghost\\\" in the netmap\"", tailnet.ErrUnknownPeer)),
			want: "ghost is not a peer on the tailnet",
		},
		{
			name: "known peer that does not answer",
			err:  status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: i/o timeout\""),
			want: "cannot reach ghost over the tailnet",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := agentExit("ghost", client.AgentError("ghost", tc.err))
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("agentExit = %q, want it to say %q", err, tc.want)
			}
			if ee, ok := err.(*exitError); !ok || ee.code != ExitError {
				t.Errorf("agentExit = %#v, want exit code %d", err, ExitError)
			}
		})
	}
}
