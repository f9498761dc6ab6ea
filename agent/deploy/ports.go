package deploy

import (
	"context"
	"time"
)

// Nix is what the engine needs from nix (pkg/nix implements it through an
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

// Activator runs a system's switch-to-configuration.
type Activator interface {
	// DryActivate runs "<toplevel>/bin/switch-to-configuration dry-activate",
	// passing each output line to onLine. A non-zero exit is an error
	// carrying the exit code (exit 100: the change needs a reboot).
	DryActivate(ctx context.Context, toplevel string, onLine func(string)) error
	// StartSwitch starts "<toplevel>/bin/switch-to-configuration <mode>" in the
	// transient unit named unit, appending its output to logPath and writing
	// its exit code to exitPath when it ends. It returns once the unit started;
	// the unit outlives the agent.
	StartSwitch(ctx context.Context, unit, toplevel, mode, logPath, exitPath string) error
	// UnitActive reports whether the transient unit is still running.
	UnitActive(ctx context.Context, unit string) (bool, error)
}

// switchChecker is an optional part of Activator: it runs
// "<toplevel>/bin/switch-to-configuration check" (the system's switch
// inhibitors and pre-switch checks), passing each output line to onLine. A
// non-zero exit is an error carrying the exit code (see exitCodeOf).
type switchChecker interface {
	CheckSwitch(ctx context.Context, toplevel string, onLine func(string)) error
}

// exitCoder is implemented by the errors of a command that exited non-zero.
type exitCoder interface {
	ExitCode() int
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
