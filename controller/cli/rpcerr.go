package cli

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/internal/tailnet"
)

// rpcError turns an agent's gRPC error into one line and an exit code.
func rpcError(host string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*exitError); ok {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return exitf(ExitError, "%s: %v", host, err)
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return exitf(ExitRefused, "%s refused the request: %s (is your public key in the agent's trustedKeys? 'pantherctl pubkey' prints it)", host, st.Message())
	case codes.PermissionDenied:
		return exitf(ExitRefused, "%s refused the request: %s", host, st.Message())
	case codes.FailedPrecondition:
		return exitf(ExitRefused, "%s: %s", host, st.Message())
	case codes.Unavailable, codes.DeadlineExceeded:
		// The dialer's error reaches us as text inside gRPC's status.
		if strings.Contains(st.Message(), "no such host") || strings.Contains(st.Message(), tailnet.ErrUnknownPeer.Error()) {
			return exitf(ExitError, "%s is not a peer on the tailnet: check the name, or set its tailnetName in panther.json if it differs from the flake's host name", host)
		}
		return exitf(ExitError, "cannot reach %s over the tailnet (%s): is the host online and panther-agent running? ('pantherctl status %s')", host, humanRPC(st.Message()), host)
	}
	return exitf(ExitError, "%s: %s", host, humanRPC(st.Message()))
}
