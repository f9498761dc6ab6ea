// Package defaults holds the defaults that panther-agent and pantherctl
// share, in one place: the agent applies them, the controller relies on
// them (never guessing the agent's values).
package defaults

import "time"

const (
	// AgentPort is the agents' tailnet gRPC port.
	AgentPort = 7443
	// ConfirmTimeout is the agent's confirmation window when neither its
	// configuration nor the request sets one.
	ConfirmTimeout = 60 * time.Second
	// MaxConfirmTimeout is the longest confirmation window a request may
	// ask for unless the agent's configuration raises it; the controller
	// bounds its waits with it when the window is the agent's.
	MaxConfirmTimeout = 15 * time.Minute
	// SwitchTimeout bounds switch-to-configuration on the agent.
	SwitchTimeout = 10 * time.Minute
	// IntentLifetime is how long a signed intent stays valid.
	IntentLifetime = 5 * time.Minute
	// ApprovalTimeout is how long an agent holds a prompted deployment
	// after its dry activation for Approve or Decline when the intent sets
	// no approval timeout; past it the deployment ends NOT_APPROVED with
	// nothing changed.
	ApprovalTimeout = 5 * time.Minute
	// ConfirmCallTimeout bounds one confirm call from the controller.
	ConfirmCallTimeout = 15 * time.Second
)
