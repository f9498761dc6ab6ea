package deploy

import (
	"context"
	"time"
)

// Nix is what the engine needs from nix (internal/nix implements it through an
// adapter in the agent's wiring).
type Nix interface {
	Build(ctx context.Context, installable string, onLine func(string)) (string, error)
	Hosts(ctx context.Context, flakeRef string) ([]string, error)
	Warnings(ctx context.Context, flakeRef, host string) ([]string, error)
	DiffClosures(ctx context.Context, oldPath, newPath string) ([]ClosureChange, error)
	SetProfile(ctx context.Context, profile, storePath string) error
	Generations(ctx context.Context, profile string) ([]Generation, error)
}

// hostInspector is an optional fast path of Nix: the flake's hosts and one
// host's warnings in a single evaluation (warnings nil if the host is absent).
type hostInspector interface {
	HostInfo(ctx context.Context, flakeRef, host string) (hosts, warnings []string, err error)
}

// generationReader is an optional fast path of Nix: the profile's current
// generation number without listing every generation.
type generationReader interface {
	CurrentGeneration(ctx context.Context, profile string) (int64, error)
}

// Generation is one generation of the system profile.
type Generation struct {
	Number  int64
	Created time.Time
	Current bool
	Path    string
}

// Activator runs a system's switch-to-configuration in transient systemd
// units. A unit outlives the agent (the switch may restart it) and stays
// loaded after it ends, so that how it ended is read from systemd itself,
// also by an agent that restarted in the meantime, until ClearUnit.
type Activator interface {
	// StartUnit starts "<Toplevel>/bin/switch-to-configuration <Mode>" in the
	// transient unit u.Unit, its output appended to u.Output. It returns once
	// the unit runs.
	StartUnit(ctx context.Context, u UnitSpec) error
	// UnitStatus reports whether the unit still runs, how it ended, or that
	// systemd has no record of it.
	UnitStatus(ctx context.Context, unit string) (UnitStatus, error)
	// ClearUnit stops the unit if it still runs and drops systemd's record
	// of it. A unit that is gone already is no error.
	ClearUnit(ctx context.Context, unit string) error
}

// UnitSpec is one run of switch-to-configuration in a transient unit.
type UnitSpec struct {
	Unit     string // transient unit name, e.g. "panther-switch-<id>"
	Toplevel string // the system whose switch-to-configuration runs
	Mode     string // switch, boot, test, dry-activate or check
	Output   string // file the unit appends its stdout and stderr to
	// InstallBootloader sets NIXOS_INSTALL_BOOTLOADER=1 in the unit's
	// environment: switch-to-configuration (re)installs the boot loader.
	InstallBootloader bool
	// Deadline is how long the unit may run before systemd stops it
	// (freeing switch-to-configuration's lock); 0 means no deadline.
	Deadline time.Duration
}

// UnitState is where a transient unit stands.
type UnitState int

// Unit states.
const (
	// UnitGone: systemd has no record of the unit (never started, cleared,
	// stopped, or lost to a service manager restart or a reboot).
	UnitGone UnitState = iota
	// UnitRunning: the command has not ended yet.
	UnitRunning
	// UnitExited: the command exited; ExitCode is its status.
	UnitExited
	// UnitKilled: the command was killed by Signal.
	UnitKilled
	// UnitTimedOut: systemd stopped the unit at its deadline.
	UnitTimedOut
	// UnitFailed: the unit ended without running the command to an exit
	// (Result says why, e.g. "resources").
	UnitFailed
)

// UnitStatus is systemd's record of a transient unit.
type UnitStatus struct {
	State    UnitState
	ExitCode int           // UnitExited
	Signal   string        // UnitKilled: e.g. "SIGKILL"
	Result   string        // systemd's Result property, e.g. "exit-code", "timeout"
	Deadline time.Duration // the unit's deadline (UnitTimedOut)
}

// HealthReport is one health check result.
type HealthReport struct {
	Name   string
	OK     bool
	Detail string
}

// Health checks the system after a switch.
type Health interface {
	// FailedUnits lists the units systemd reports failed now, sorted. It is
	// the baseline taken before the switch, and what exit 4 is judged on.
	FailedUnits(ctx context.Context) ([]string, error)
	// Check runs every check, reporting each result as it comes. Units in
	// baseline (failed before the switch) do not fail the verdict.
	Check(ctx context.Context, baseline []string, extraCritical []string, report func(HealthReport)) (HealthVerdict, error)
}

// HealthVerdict is the outcome of a health check.
type HealthVerdict struct {
	OK     bool
	Reason string // one line explaining a failure
	// NewlyFailed are failed units that were not failed at the baseline;
	// PreviouslyFailed were failed already then.
	NewlyFailed, PreviouslyFailed []string
}

// Host is what the engine asks the host itself, over systemd.
type Host interface {
	// ShuttingDown reports whether the host is going down: systemd's
	// SystemState is "stopping", or a start job for a shutdown target
	// (shutdown, reboot, halt, poweroff, kexec) is queued. A switch unit
	// that ended without an exit code, a failing health check or a refused
	// rollback unit then mean "the host is rebooting", not "the new system
	// is broken" (see shutdown.go).
	ShuttingDown(ctx context.Context) (bool, error)
}

// Deadman is the optional part of an Activator that keeps the independent
// dead-man: a transient timer <unit>.timer that starts <unit>.service (the
// previous system's switch-to-configuration switch) once, at the end of
// the confirmation window, whether the agent runs or not. The agent's own
// deadline starts that same service, so exactly one rollback runs whoever
// is first. An Activator without it leaves the agent's own timer alone.
type Deadman interface {
	// ArmDeadman creates the timer and its service spec (spec.Unit is the
	// pair's name without suffix) so that the service starts after the
	// given time, counted on the monotonic clock from now. A pair of that
	// name that has not fired yet is replaced (re-arming); one that has
	// fired is left alone (its run is the rollback) and ErrDeadmanFired
	// returned.
	ArmDeadman(ctx context.Context, spec UnitSpec, after time.Duration) error
	// HoldDeadman stops the timer so that it never fires from now on, and
	// reports whether it had fired (started the service) already.
	HoldDeadman(ctx context.Context, unit string) (fired bool, err error)
	// StartDeadman starts the service now: it joins a service already
	// started, and creates it from spec if systemd no longer has it.
	StartDeadman(ctx context.Context, spec UnitSpec) error
	// ClearDeadman stops and drops the timer and the service.
	ClearDeadman(ctx context.Context, unit string) error
}
