package tailnet

import "errors"

var (
	// ErrInvalidConfig is returned by [New] when a required [Config] field
	// is missing or a field cannot be used.
	ErrInvalidConfig = errors.New("invalid tailnet config")

	// ErrUnknownPeer is returned by WhoIs when the address does not belong
	// to a peer the node knows.
	ErrUnknownPeer = errors.New("unknown tailnet peer")

	// ErrNotAllowed is returned by [Authorizer.Authorize] when the peer is
	// known but neither its tags nor its user are allowed.
	ErrNotAllowed = errors.New("tailnet peer not allowed")

	// ErrNotRunning is returned by [Node] methods that need the node to be
	// up (see [Node.Up]).
	ErrNotRunning = errors.New("tailnet node not running")
)
