// Package deploy is the agent's deployment engine: it validates, builds and
// dry-activates a host's flake, switches to it in a transient systemd unit,
// checks health, and runs the dead-man switch that rolls the host back when
// the controller does not confirm in time. Every step is recorded in the
// journal before it changes the system, so the engine resumes after its own
// restart and after a reboot.
//
// The engine talks to the OS only through the small interfaces in ports.go;
// it knows nothing about gRPC.
package deploy

import (
	"errors"
	"fmt"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// Action is what a request asks for.
type Action string

// Actions.
const (
	ActionBuild       Action = "build"
	ActionDryActivate Action = "dry-activate"
	ActionSwitch      Action = "switch"
	ActionBoot        Action = "boot"
	ActionRollback    Action = "rollback"
)

// Phase is a step of a deployment.
type Phase string

// Phases, in order.
const (
	PhaseValidate    Phase = "validate"
	PhaseBuild       Phase = "build"
	PhaseDryActivate Phase = "dry-activate"
	PhaseSwitch      Phase = "switch"
	PhaseHealth      Phase = "health"
	PhaseConfirm     Phase = "confirm"
	PhaseRollback    Phase = "rollback"
	// PhaseApprove: after dry-activate, waiting for the operator's Approve
	// (only when the request asked for it); it is not a phase with a start
	// and an end of its own in the event stream.
	PhaseApprove Phase = "approve"
)

// Request is a verified deployment request.
type Request struct {
	ID             string
	Action         Action
	FlakeRef       string // e.g. path:/var/lib/panther-agent/sources/<hex>
	FlakeAttr      string
	SourceDigest   string
	ExpectedPath   string        // "" = whatever the source builds (bound by the digest)
	ConfirmTimeout time.Duration // 0 = the agent's default
	FailOnWarnings bool
	ExtraCritical  []string
	// InstallBootloader passes NIXOS_INSTALL_BOOTLOADER=1 to the switch (and
	// to a rollback's switch): switch-to-configuration reinstalls the boot
	// loader.
	InstallBootloader bool
	Generation        int64 // rollback: target generation, 0 = previous
	RequestedBy       string
	KeyID             string
	// Force deploys a configuration that would stop or remove the agent's
	// own unit (refused otherwise).
	Force bool
	// AwaitApproval stops a switch or boot after its dry-activate until
	// Approve (or Decline, or ApprovalTimeout) decides (approve.go).
	AwaitApproval   bool
	ApprovalTimeout time.Duration // required with AwaitApproval
	// Source is where the flake source came from and which locked inputs
	// came with it (inputs.go).
	Source SourceInfo
	// RolloutID and BuildPeers: build once per closure (see cache.go). ""
	// / none: the agent builds by itself.
	RolloutID  string
	BuildPeers []string
	// PushTo is a Nix store URI the closure is copied to when this host
	// built it ("" = none; see cache.go).
	PushTo string
}

// EventKind says which fields of an Event are set.
type EventKind int

// Event kinds.
const (
	EventPhaseStarted EventKind = iota + 1
	EventPhaseFinished
	EventLog
	EventWarning
	EventHealth
	EventSummary
	EventAwaiting
	EventResult
	// EventAwaitingApproval: the deployment waits for Approve (Approval set).
	EventAwaitingApproval
)

// Event is one thing that happened during a deployment.
type Event struct {
	Time         time.Time
	DeploymentID string
	Kind         EventKind
	Phase        Phase
	OK           bool          // PhaseFinished, Health
	Elapsed      time.Duration // PhaseFinished
	Err          string        // PhaseFinished
	Line         string        // Log, Warning
	Name, Detail string        // Health
	Summary      *Summary
	Awaiting     *Awaiting
	Approval     *AwaitingApproval // EventAwaitingApproval
	Result       *Result
}

// Summary is what the operator sees before a switch.
type Summary struct {
	CurrentPath       string
	CurrentGeneration int64
	CurrentVersion    string
	NewPath           string
	NewVersion        string
	Changes           []ClosureChange
	WouldStop         []string
	WouldRestart      []string
	WouldStart        []string
	WouldReload       []string
	Warnings          []string
	// The rest of dry-activate's vocabulary.
	WouldNotStop        []string // "would NOT stop the following changed units"
	WouldActivate       bool     // "would activate the configuration..."
	WouldRestartSystemd bool     // "would restart systemd"
	// RebootRequired lists what differs from the booted system (kernel,
	// initrd, kernel-modules): the switch activates the rest, these need a
	// reboot.
	RebootRequired []string
	// NotActivatable says why the new system cannot be activated live
	// (dry-activate exited 100, or its switch inhibitors refused): a switch
	// only makes it the boot default ("" = it can be activated).
	NotActivatable string
	// StopsAgent says why the new system would stop or remove the agent's
	// own unit ("" = it does not); such a deploy needs Force.
	StopsAgent string
	// CurrentClosureSize and NewClosureSize are the closure sizes in bytes
	// of the running and the new system (0 = unknown); see closuresize.go.
	CurrentClosureSize, NewClosureSize int64
}

// ClosureChange is one package version change between two systems.
type ClosureChange struct {
	Name, OldVersion, NewVersion, SizeDelta string
	// SizeBytes is SizeDelta as a number of bytes (0 when nix printed none).
	SizeBytes int64
}

// Awaiting is sent when a switch waits for confirmation.
type Awaiting struct {
	Deadline      time.Time
	NewPath       string
	NewGeneration int64
}

// Outcome is how a deployment ended.
type Outcome = journal.State

// Result is the end of a deployment (or where it stands).
type Result struct {
	Outcome          journal.State
	FailedPhase      Phase
	Message          string
	StorePath        string
	Generation       int64
	SwitchExitCode   int
	RecoveryCommands []string
	LogPath          string
	// RebootRequired lists what needs a reboot to take effect (kernel,
	// initrd, kernel-modules, or the whole system when it was not activated).
	RebootRequired []string
	// PreviouslyFailed are units that had failed before the switch and were
	// failed after it: reported, not held against the deployment.
	PreviouslyFailed []string
}

// Domain errors; the gRPC layer maps them to status codes in one place.
var (
	ErrBusy           = errors.New("another deployment is in progress")
	ErrUnknownHost    = errors.New("host not in the flake's nixosConfigurations")
	ErrPathMismatch   = errors.New("built store path differs from the dry-activated one")
	ErrNotPending     = errors.New("deployment is not awaiting confirmation")
	ErrDeadlinePassed = errors.New("confirmation deadline has passed")
	// ErrDeadmanFired: the independent dead-man's timer has started its
	// rollback; it cannot be re-armed.
	ErrDeadmanFired   = errors.New("the independent dead-man has fired")
	ErrTimeoutTooLong = errors.New("confirm timeout exceeds the agent's maximum")
	ErrNoSuchGen      = errors.New("no such generation")
	ErrInvalidRequest = errors.New("invalid request")
	ErrFailed         = errors.New("deployment failed")
	ErrSourceMissing  = errors.New("source archive not uploaded")
	ErrClosed         = errors.New("agent is shutting down")
	// ErrSwitchLocked: another switch-to-configuration holds its lock (a
	// nixos-rebuild or system.autoUpgrade is running).
	ErrSwitchLocked = errors.New("another switch is running on the host")
	// ErrStopsAgent: the configuration would stop or remove the agent's unit.
	ErrStopsAgent = errors.New("the new configuration would stop or remove the agent")
	ErrNotNixOS   = errors.New("not a NixOS system")
	// ErrWrongFlakeHost: the request asks for a configuration other than
	// the agent's flakeHost.
	ErrWrongFlakeHost = errors.New("the agent serves only its own configuration")
	// ErrNotAwaitingApproval: Approve or Decline for a deployment that does
	// not (or no longer) await approval.
	ErrNotAwaitingApproval = errors.New("deployment is not awaiting approval")
	// ErrApprovalPathMismatch: Approve named a store path other than the
	// dry-activated one; the deployment keeps waiting.
	ErrApprovalPathMismatch = errors.New("the approved store path is not the dry-activated one")
)

// BusyError names the running deployment.
type BusyError struct{ ID string }

func (e *BusyError) Error() string {
	return "deployment " + e.ID + " is in progress; wait for it to finish"
}
func (e *BusyError) Unwrap() error { return ErrBusy }

// WrongFlakeHostError names the attribute a request asked for and the one
// the agent serves.
type WrongFlakeHostError struct{ Requested, Configured string }

func (e *WrongFlakeHostError) Error() string {
	return fmt.Sprintf("this agent serves only nixosConfigurations.%s (its flakeHost), the request asked for nixosConfigurations.%s: "+
		"check the host's name and tailnetName in panther.json", e.Configured, e.Requested)
}
func (e *WrongFlakeHostError) Unwrap() error { return ErrWrongFlakeHost }
