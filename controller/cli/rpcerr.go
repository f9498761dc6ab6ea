package cli

import (
	"context"
	"errors"

	"github.com/pantheros/panther/controller/rollout"
)

// agentExit turns an error about host's agent into one line and an exit
// code; the kinds come typed from controller/client (rollout.Err…).
func agentExit(host string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var ae *rollout.AgentError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return exitf(ExitError, "%s: interrupted", host)
		}
		return exitf(ExitError, "%s: %v", host, err)
	}
	msg := ae.Message
	switch {
	case errors.Is(err, rollout.ErrUntrusted):
		return exitf(ExitRefused, "%s refused the request: %s (is your public key in the agent's trustedKeys? 'pantherctl pubkey' prints it)", host, msg)
	case errors.Is(err, rollout.ErrPrecondition), errors.Is(err, rollout.ErrControlDown):
		return exitf(ExitRefused, "%s: %s", host, msg)
	case errors.Is(err, rollout.ErrRefused):
		return exitf(ExitRefused, "%s refused the request: %s", host, msg)
	case errors.Is(err, rollout.ErrNotPeer):
		return exitf(ExitError, "%s is not a peer on the tailnet: check the name, or set its tailnetName in panther.json if it differs from the flake's host name", host)
	case errors.Is(err, rollout.ErrUnreachable):
		return exitf(ExitError, "cannot reach %s over the tailnet (%s): is the host online and panther-agent running? ('pantherctl status %s')", host, msg, host)
	}
	return exitf(ExitError, "%s: %s", host, msg)
}
