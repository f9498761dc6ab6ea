package rollout

import (
	"errors"
	"fmt"
)

// Kinds of agent error. An *AgentError wraps one of them: test with
// errors.Is(err, rollout.ErrRefused), never by the text.
var (
	// ErrUntrusted: the agent does not trust the signing key (or the
	// signature is bad).
	ErrUntrusted = errors.New("the agent does not trust the request's key")
	// ErrRefused: the agent refused the request (wrong host, expired,
	// replayed); ErrPrecondition and ErrControlDown are refusals too.
	ErrRefused = errors.New("the agent refused the request")
	// ErrPrecondition: the agent's state does not allow the request now
	// (busy, nothing pending, a switch it will not do, not its flakeHost).
	// It is an ErrRefused.
	ErrPrecondition = errors.New("the agent cannot do that now")
	// ErrControlDown: a confirm refused because the host has no live
	// connection to the tailnet's coordination server; it may clear
	// before the deadline, so it is worth retrying. It is an ErrRefused.
	ErrControlDown = errors.New("the host has no connection to the tailnet's control server")
	// ErrNotPeer: the host name is not a peer on the tailnet.
	ErrNotPeer = errors.New("not a peer on the tailnet")
	// ErrUnreachable: the agent could not be reached, or stopped
	// answering; worth retrying.
	ErrUnreachable = errors.New("the agent cannot be reached")
	// ErrInterrupted: the stream or call broke on the agent's side
	// (restart, internal error); worth reattaching.
	ErrInterrupted = errors.New("the call was interrupted")
	// ErrNotFound: no such deployment or generation.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the agent found the request malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrUnsupported: the agent (or this client) does not offer the call.
	ErrUnsupported = errors.New("not supported by the agent")
)

// AgentError is an error from one host's agent: what kind (one of the
// Err… sentinels above), the host, and the agent's message in words for
// people.
type AgentError struct {
	Host    string
	Kind    error  // one of the sentinels
	Message string // the agent's (or transport's) words
	Err     error  // the underlying error, if any
}

func (e *AgentError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Host, e.Kind)
	}
	return fmt.Sprintf("%s: %s", e.Host, e.Message)
}

// Unwrap lets errors.Is find the kind (and ErrRefused under
// ErrControlDown) and the underlying error.
func (e *AgentError) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Kind == ErrControlDown || e.Kind == ErrPrecondition {
		errs = append(errs, ErrRefused)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Retriable reports whether a call that failed with err is worth trying
// again (reattaching, confirming again): the agent may be restarting after
// its own switch, or the network blinking.
func Retriable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrInterrupted)
}

// ErrDeclined: the operator did not approve the switch; nothing changed.
var ErrDeclined = errors.New("not approved")
