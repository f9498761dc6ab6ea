// Package rollout is the controller's core: it takes hosts from plan to
// result — prepare the source, dry-activate, ask for approval, switch,
// confirm, reattach — in batches, a canary first and then waves that halt
// on too many unhealthy hosts. It works through the Agent interface
// (implemented over gRPC by controller/client, in memory by tests) and
// reports through an Observer (the CLI's renderer); it never sees
// generated protobuf code, flags or terminals.
package rollout

import "time"

// Action is what a deployment asks an agent to do.
type Action string

// Actions of an Intent.
const (
	ActionBuild       Action = "build"
	ActionDryActivate Action = "dry-activate"
	ActionSwitch      Action = "switch"
	ActionBoot        Action = "boot"
	ActionRollback    Action = "rollback"
)

// Phase is a step of a deployment on the agent.
type Phase string

// Phases, in the order a switch goes through them.
const (
	PhaseUnknown     Phase = ""
	PhaseValidate    Phase = "validate"
	PhaseBuild       Phase = "build"
	PhaseDryActivate Phase = "dry-activate"
	PhaseSwitch      Phase = "switch"
	PhaseHealth      Phase = "health"
	PhaseConfirm     Phase = "confirm"
	PhaseRollback    Phase = "rollback"
	PhaseApprove     Phase = "approve"
)

// String is the phase's name for people; "unspecified" when unknown.
func (p Phase) String() string {
	if p == PhaseUnknown {
		return "unspecified"
	}
	return string(p)
}

// Outcome is how a deployment ended (or where it stands).
type Outcome string

// Outcomes; the values are the words pantherctl prints.
const (
	OutcomeUnknown              Outcome = ""
	OutcomeBuilt                Outcome = "built"
	OutcomeDryActivated         Outcome = "dry activated"
	OutcomeAwaitingConfirmation Outcome = "awaiting confirmation"
	OutcomeConfirmed            Outcome = "confirmed"
	OutcomeBootScheduled        Outcome = "boot scheduled"
	OutcomeRolledBack           Outcome = "rolled back"
	OutcomeFailed               Outcome = "failed"
	OutcomeManualIntervention   Outcome = "manual intervention"
	OutcomeRunning              Outcome = "running"
	OutcomeRebootRequired       Outcome = "reboot required"
	OutcomeNotApproved          Outcome = "not approved"
)

// String is the outcome's words; "unspecified" when unknown.
func (o Outcome) String() string {
	if o == OutcomeUnknown {
		return "unspecified"
	}
	return string(o)
}

// Host is one target of a rollout.
type Host struct {
	// Name is the flake's nixosConfigurations attribute.
	Name string
	// Addr is the agent's tailnet name; default Name.
	Addr string
	// CriticalUnits must be active after the switch, besides Options'.
	CriticalUnits []string
	// ConfirmTimeout is the host's confirmation window; 0: Options', else
	// the agent's default.
	ConfirmTimeout time.Duration
}

// Address is the name to reach the host's agent by.
func (h Host) Address() string {
	if h.Addr != "" {
		return h.Addr
	}
	return h.Name
}

// SourceRef names the uploaded flake source an intent builds.
type SourceRef struct {
	Digest string // content digest of the archive
	Subdir string // the flake's directory inside the archive ("" = root)
}

// Intent is one request to an agent, before signing.
type Intent struct {
	Action       Action
	DeploymentID string
	Source       SourceRef
	// FlakeAttr is the nixosConfigurations attribute to build.
	FlakeAttr string
	// ExpectedStorePath: switch exactly this system (the one dry-activated
	// before the approval); "" = whatever the build gives.
	ExpectedStorePath string
	// ConfirmTimeout is the confirmation window; 0 = the agent's default.
	ConfirmTimeout    time.Duration
	FailOnWarnings    bool
	InstallBootloader bool
	Force             bool
	CriticalUnits     []string
	// Generation is a rollback's target; 0 = the previous good one.
	Generation int64
	// AwaitApproval: a switch or boot stops after its dry activation and
	// waits for Approve or Decline (one deployment per host for a prompted
	// deploy), at most ApprovalTimeout (0 = the agent's default).
	AwaitApproval   bool
	ApprovalTimeout time.Duration
	// RolloutID and BuildPeers: build once per closure (Options);
	// PushTo: where the builder copies the closure.
	RolloutID  string
	BuildPeers []string
	PushTo     string
}

// EventKind says which field of an Event is set.
type EventKind int

// Kinds of Event.
const (
	EventPhaseStarted EventKind = iota + 1
	EventPhaseFinished
	EventLog
	EventWarning
	EventHealth
	EventSummary
	EventAwaiting
	EventResult
	EventAwaitingApproval
)

// Event is one thing an agent reported about a deployment.
type Event struct {
	Kind         EventKind
	Time         time.Time // zero when the agent sent none
	DeploymentID string
	// Phase: of PhaseStarted, PhaseFinished and Log events.
	Phase Phase
	// PhaseFinished: whether it succeeded, how long it took, why not.
	OK      bool
	Elapsed time.Duration
	Error   string
	// Log and Warning: the line.
	Line     string
	Health   *HealthCheck
	Summary  *Summary
	Awaiting *Awaiting
	Result   *Result
	Approval *AwaitingApproval
}

// AwaitingApproval is a deployment held after its dry activation until it
// is approved (switching exactly NewStorePath) or declined.
type AwaitingApproval struct {
	Deadline     time.Time
	NewStorePath string
}

// HealthCheck is one health check's verdict after a switch.
type HealthCheck struct {
	Name   string
	OK     bool
	Detail string
}

// ClosureChange is one package that changes between the systems.
type ClosureChange struct {
	Name, OldVersion, NewVersion, SizeDelta string
	// SizeBytes is SizeDelta in bytes (0 when nix printed none).
	SizeBytes int64
}

// Summary is what a switch would change, from the dry activation.
type Summary struct {
	CurrentStorePath    string
	CurrentGeneration   int64
	CurrentVersion      string
	NewStorePath        string
	NewVersion          string
	ClosureChanges      []ClosureChange
	WouldStop           []string
	WouldRestart        []string
	WouldStart          []string
	WouldReload         []string
	WouldNotStop        []string
	Warnings            []string
	WouldActivate       bool
	WouldRestartSystemd bool
	// RebootRequired lists what differs from the booted system (kernel, …).
	RebootRequired []string
	// NotActivatable says why a switch can only set the boot default.
	NotActivatable string
	// StopsAgent says how the new system stops or removes the agent.
	StopsAgent string
	// CurrentClosureSize and NewClosureSize are the systems' closure sizes
	// in bytes (0 = unknown): the fleet diff adds up their difference.
	CurrentClosureSize, NewClosureSize int64
}

// Awaiting is a switched deployment waiting for its confirmation.
type Awaiting struct {
	Deadline      time.Time
	NewStorePath  string
	NewGeneration int64 // 0 when the confirm makes the generation
}

// Result is how a deployment ended.
type Result struct {
	Outcome               Outcome
	FailedPhase           Phase
	Message               string
	StorePath             string
	Generation            int64
	SwitchExitCode        int32
	RecoveryCommands      []string
	LogPath               string // on the agent
	RebootRequired        []string
	PreviouslyFailedUnits []string
}
