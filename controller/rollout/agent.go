package rollout

import "context"

// Agent is the controller's view of the agents of a fleet: every call
// names the host it goes to. controller/client implements it over the
// tailnet; tests use an in-memory fake. Errors are *AgentError (test
// them with errors.Is against the Err… kinds).
type Agent interface {
	// Deploy starts a signed deployment on host and returns its events.
	Deploy(ctx context.Context, host Host, in Intent) (Events, error)
	// Watch follows a deployment that is already running, from its start.
	Watch(ctx context.Context, host Host, id string) (Events, error)
	// Rollback starts a signed rollback (in.Generation; 0 = the previous
	// good one) and returns its events.
	Rollback(ctx context.Context, host Host, in Intent) (Events, error)
	// ConfirmRoute prepares the way a confirm of deployment id on host
	// goes (for the gRPC client: a brand-new tailnet node, which proves a
	// newcomer can still reach the switched host). The core opens it when
	// the host starts its health checks, after the switch ended.
	ConfirmRoute(host Host, id string) ConfirmRoute
	// Approve lets a deployment that awaits approval after its dry
	// activation (Intent.AwaitApproval) go on, switching exactly
	// storePath; its events go on on the deployment's stream. An
	// ErrPrecondition when it no longer awaits approval.
	Approve(ctx context.Context, host Host, id, storePath string) error
	// Decline ends a deployment that awaits approval, changing nothing,
	// and returns its result.
	Decline(ctx context.Context, host Host, id string) (*Result, error)
}

// Events is a deployment's event stream. Next returns io.EOF once the
// agent ended the stream.
type Events interface {
	Next() (Event, error)
}

// ConfirmRoute is how a confirm reaches a switched host.
type ConfirmRoute interface {
	// Ready waits, at most until ctx ends, for the route to be usable and
	// says which way Confirm goes: when the route could not be set up,
	// Confirm goes another way, which the RouteInfo names.
	Ready(ctx context.Context) RouteInfo
	// Confirm sends one signed confirmation of deployment id.
	Confirm(ctx context.Context) (Result, error)
	// Close releases the route (a temporary tailnet node).
	Close()
}

// RouteInfo says how a confirm went, for the operator.
type RouteInfo struct {
	// Via names the route in words ("a new tailnet node").
	Via string
	// Notes for the operator: how long the route took to come up, what a
	// confirm over it does not prove.
	Notes []Note
}

// Source brings the flake source (and whatever else a deployment builds
// from) to a host before its first request.
type Source interface {
	// Prepare makes sure host holds the source and returns its reference.
	// Called once per host, before the host's first deployment.
	Prepare(ctx context.Context, host Host, note func(Note)) (SourceRef, error)
}
