// Package health judges a host after a switch: systemd's system state, units
// that failed since a baseline taken before the switch, critical units that
// must be active, and service checks (HTTP, TCP connect, command) with
// timeouts and retries. It talks to systemd over D-Bus through the small
// Systemd interface; FakeSystemd stands in for it in tests.
package health

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults applied to zero fields of Spec and CheckSpec.
const (
	// DefaultStartupTimeout bounds the wait while systemd is still starting.
	DefaultStartupTimeout = 2 * time.Minute
	// DefaultExpectStatus is the status an http check wants.
	DefaultExpectStatus = 200
	// DefaultTimeout bounds one attempt of a check.
	DefaultTimeout = 5 * time.Second
	// DefaultRetries is how many attempts follow a failed one.
	DefaultRetries = 3
	// DefaultInterval is the pause between attempts.
	DefaultInterval = time.Second
)

// Check types (CheckSpec.Type), also used as Result.Kind.
const (
	TypeHTTP    = "http"
	TypeTCP     = "tcp"
	TypeCommand = "command"
)

// Result kinds for what is judged besides service checks.
const (
	// KindSystemState is systemd's overall state (is-system-running).
	KindSystemState = "system-state"
	// KindFailedUnit is a unit in the failed state; it fails the check only
	// if it was not failed at the baseline.
	KindFailedUnit = "failed-unit"
	// KindCriticalUnit is a unit that must be active.
	KindCriticalUnit = "critical-unit"
)

// ErrInvalidSpec is wrapped by every error about a malformed Spec.
var ErrInvalidSpec = errors.New("invalid health spec")

// Spec says what Check judges.
type Spec struct {
	// Settle is a pause before anything is judged, so that services which
	// crash shortly after starting are caught. Default 0.
	Settle time.Duration
	// StartupTimeout bounds the wait while systemd reports "initializing"
	// or "starting" (and while a critical unit is activating). Default 2m.
	StartupTimeout time.Duration
	// CriticalUnits must be active. Default none.
	CriticalUnits []string
	// Checks are the service checks, run concurrently. Default none.
	Checks []CheckSpec
}

// CheckSpec is one service check. Type selects which of URL, Address or
// Command is used.
type CheckSpec struct {
	// Name identifies the check in results; required.
	Name string
	// Type is TypeHTTP, TypeTCP or TypeCommand; required.
	Type string
	// URL is fetched with GET by an http check (redirects are not
	// followed). Required for http.
	URL string
	// ExpectStatus is the status an http check wants. Default 200.
	ExpectStatus int
	// Address is the host:port a tcp check connects to. Required for tcp.
	Address string
	// Command is the argv a command check runs; it passes on exit 0.
	// Required for command.
	Command []string
	// Timeout bounds one attempt. Default 5s.
	Timeout time.Duration
	// Retries is how many attempts follow a failed one; negative means a
	// single attempt. Default 3.
	Retries int
	// Interval is the pause between attempts. Default 1s.
	Interval time.Duration
}

// Result is one judged item, reported as soon as it is known.
type Result struct {
	// Name is the check name, the unit name or "system".
	Name string
	// Kind is a check type or one of the Kind constants.
	Kind string
	// OK is false when this item fails the health check.
	OK bool
	// Detail explains the verdict in words.
	Detail string
}

// String formats r as one log line.
func (r Result) String() string {
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	return fmt.Sprintf("%s %s: %s (%s)", r.Kind, r.Name, verdict, r.Detail)
}

// Report is the outcome of Check.
type Report struct {
	// OK is true when nothing failed.
	OK bool
	// SystemState is systemd's state when it was judged.
	SystemState string
	// NewlyFailed are units failed now but not at the baseline, sorted.
	NewlyFailed []string
	// PreviouslyFailed are units failed now and at the baseline, sorted.
	PreviouslyFailed []string
	// Results holds every result in a stable order: system state, failed
	// units, critical units, then checks in Spec order.
	Results []Result
}

// Reason explains in one line why the report is not OK ("" when it is).
func (r Report) Reason() string {
	if r.OK {
		return ""
	}
	var parts []string
	for _, res := range r.Results {
		if !res.OK {
			parts = append(parts, fmt.Sprintf("%s %s: %s", res.Kind, res.Name, res.Detail))
		}
	}
	if len(parts) == 0 {
		return "health check incomplete"
	}
	return strings.Join(parts, "; ")
}

// Snapshot is the state before a switch that Check compares against. The
// zero Snapshot means "no baseline": every failed unit counts as new.
type Snapshot struct {
	// Taken is when the snapshot was taken.
	Taken time.Time `json:"taken"`
	// SystemState is systemd's state at that time.
	SystemState string `json:"systemState"`
	// Failed are the units failed at that time, sorted.
	Failed []string `json:"failed"`
}

// withDefaults returns s with zero fields set to their defaults.
func (s Spec) withDefaults() Spec {
	if s.StartupTimeout <= 0 {
		s.StartupTimeout = DefaultStartupTimeout
	}
	checks := make([]CheckSpec, len(s.Checks))
	for i, c := range s.Checks {
		checks[i] = c.withDefaults()
	}
	s.Checks = checks
	return s
}

func (c CheckSpec) withDefaults() CheckSpec {
	if c.Type == TypeHTTP && c.ExpectStatus == 0 {
		c.ExpectStatus = DefaultExpectStatus
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.Retries == 0:
		c.Retries = DefaultRetries
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	return c
}

// Validate reports the first malformed field, wrapping ErrInvalidSpec.
func (s Spec) Validate() error {
	seen := map[string]bool{}
	for i, c := range s.Checks {
		where := fmt.Sprintf("check %d (%q)", i, c.Name)
		if c.Name == "" {
			return fmt.Errorf("%w: %s has no name", ErrInvalidSpec, where)
		}
		if seen[c.Name] {
			return fmt.Errorf("%w: %s: duplicate name", ErrInvalidSpec, where)
		}
		seen[c.Name] = true
		switch c.Type {
		case TypeHTTP:
			if c.URL == "" {
				return fmt.Errorf("%w: %s: http check needs a URL", ErrInvalidSpec, where)
			}
		case TypeTCP:
			if c.Address == "" {
				return fmt.Errorf("%w: %s: tcp check needs an address", ErrInvalidSpec, where)
			}
		case TypeCommand:
			if len(c.Command) == 0 || c.Command[0] == "" {
				return fmt.Errorf("%w: %s: command check needs a command", ErrInvalidSpec, where)
			}
		default:
			return fmt.Errorf("%w: %s: unknown type %q (want http, tcp or command)", ErrInvalidSpec, where, c.Type)
		}
	}
	for _, u := range s.CriticalUnits {
		if u == "" {
			return fmt.Errorf("%w: empty critical unit name", ErrInvalidSpec)
		}
	}
	return nil
}
