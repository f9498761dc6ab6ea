package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/hashicorp/go-hclog"
)

// DefaultPollInterval is the pause between polls of a starting system or an
// activating critical unit.
const DefaultPollInterval = 250 * time.Millisecond

// Config configures a Checker.
type Config struct {
	// Connect opens a connection to systemd; required. On a host use
	// BusConnector("").
	Connect ConnectFunc
	// Logger gets one line per result. Default: a null logger.
	Logger hclog.Logger
	// PollInterval is the pause between polls while systemd is starting or
	// a critical unit is activating. Default 250ms.
	PollInterval time.Duration
}

// Checker takes baselines and judges a host's health.
type Checker struct {
	connect ConnectFunc
	log     hclog.Logger
	poll    time.Duration
	st      statusCache
}

// statusCache is what Status keeps between calls: one connection, reused
// (opened again only after it failed), and the last answer, given to the
// callers that waited while it was being asked. Status is called for every
// `pantherctl status` and preflight; a connection per call and a listing
// of every unit per caller cost the bus more than any caller needs.
type statusCache struct {
	mu      sync.Mutex
	sd      Systemd
	started time.Time // when the last query began
	state   string
	failed  []string
}

// New returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.Connect == nil {
		return nil, errors.New("health: Config.Connect is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	return &Checker{connect: cfg.Connect, log: cfg.Logger.Named("health"), poll: cfg.PollInterval}, nil
}

// withSystemd runs fn with a fresh connection to systemd.
func (c *Checker) withSystemd(ctx context.Context, fn func(Systemd) error) error {
	sd, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer sd.Close()
	return fn(sd)
}

// Baseline records the units failed before a switch.
func (c *Checker) Baseline(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Taken: time.Now()}
	err := c.withSystemd(ctx, func(sd Systemd) error {
		var err error
		if snap.SystemState, err = systemState(ctx, sd); err != nil {
			return err
		}
		snap.Failed, err = failedUnits(ctx, sd)
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	c.log.Debug("baseline taken", "state", snap.SystemState, "failed", snap.Failed)
	return snap, nil
}

// Status returns systemd's state and the failed units, for `pantherctl
// status`. Calls are answered one at a time over one connection kept open;
// a caller that waited while another call asked systemd gets that answer
// (asked after the caller arrived, so no older than the caller).
func (c *Checker) Status(ctx context.Context) (state string, failed []string, err error) {
	asked := time.Now()
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if c.st.started.After(asked) {
		return c.st.state, slices.Clone(c.st.failed), nil
	}
	started := time.Now()
	for attempt := 0; ; attempt++ {
		if c.st.sd == nil {
			if c.st.sd, err = c.connect(ctx); err != nil {
				c.st.sd = nil
				return "", nil, fmt.Errorf("health: %w", err)
			}
		}
		if state, err = systemState(ctx, c.st.sd); err == nil {
			failed, err = failedUnits(ctx, c.st.sd)
		}
		if err == nil {
			break
		}
		// The connection may be what failed (D-Bus restarted during a
		// switch): drop it, and try once more on a new one.
		c.st.sd.Close()
		c.st.sd = nil
		if attempt > 0 || ctx.Err() != nil {
			return "", nil, err
		}
	}
	c.st.started, c.st.state, c.st.failed = started, state, failed
	return state, slices.Clone(failed), nil
}

// Close closes the connection Status keeps.
func (c *Checker) Close() {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if c.st.sd != nil {
		c.st.sd.Close()
		c.st.sd = nil
	}
}

// Check waits spec.Settle, then judges the system state (waiting while
// systemd is starting), units failed since baseline, critical units and
// the service checks, calling report (serialized, may be nil) with each
// result as it comes. A failing item makes Report.OK false; err is set only
// when the check could not be carried out (bad spec, D-Bus down, ctx done),
// and then the report holds what was judged so far.
func (c *Checker) Check(ctx context.Context, baseline Snapshot, spec Spec, report func(Result)) (Report, error) {
	if err := spec.Validate(); err != nil {
		return Report{}, err
	}
	spec = spec.withDefaults()
	rec := &recorder{report: report, log: c.log}
	if err := sleep(ctx, spec.Settle); err != nil {
		return rec.done(false), fmt.Errorf("health: settling: %w", err)
	}
	err := c.withSystemd(ctx, func(sd Systemd) error {
		return c.judgeSystemd(ctx, sd, baseline, spec, rec)
	})
	if err != nil {
		return rec.done(false), err
	}
	c.runChecks(ctx, spec.Checks, rec)
	if err := ctx.Err(); err != nil {
		return rec.done(false), fmt.Errorf("health: %w", err)
	}
	return rec.done(true), nil
}

// judgeSystemd judges the system state, failed units and critical units.
func (c *Checker) judgeSystemd(ctx context.Context, sd Systemd, baseline Snapshot, spec Spec, rec *recorder) error {
	deadline := time.Now().Add(spec.StartupTimeout)

	state, err := systemState(ctx, sd)
	for err == nil && (state == "initializing" || state == "starting") && time.Now().Before(deadline) {
		if err = sleep(ctx, c.poll); err == nil {
			state, err = systemState(ctx, sd)
		}
	}
	if err != nil {
		return err
	}
	rec.setState(state)
	rec.add(stateResult(state, spec.StartupTimeout))

	failed, err := failedUnits(ctx, sd)
	if err != nil {
		return err
	}
	for _, u := range failed {
		if slices.Contains(baseline.Failed, u) {
			rec.addFailedUnit(u, false, Result{Name: u, Kind: KindFailedUnit, OK: true, Detail: "failed, but already failed before the switch"})
		} else {
			rec.addFailedUnit(u, true, Result{Name: u, Kind: KindFailedUnit, OK: false, Detail: "failed since the baseline"})
		}
	}

	if len(spec.CriticalUnits) == 0 {
		return nil
	}
	units, err := sd.ListUnitsByNamesContext(ctx, spec.CriticalUnits)
	for err == nil && time.Now().Before(deadline) && anySettling(units) {
		if err = sleep(ctx, c.poll); err == nil {
			units, err = sd.ListUnitsByNamesContext(ctx, spec.CriticalUnits)
		}
	}
	if err != nil {
		return fmt.Errorf("health: list critical units: %w", err)
	}
	for _, u := range units {
		r := Result{Name: u.Name, Kind: KindCriticalUnit, OK: u.ActiveState == "active", Detail: u.ActiveState + " (" + u.SubState + ")"}
		if u.LoadState != "loaded" {
			r.Detail += ", " + u.LoadState
		}
		rec.add(r)
	}
	return nil
}

// stateResult judges systemd's overall state. Degraded passes here: the
// failed units behind it are judged one by one against the baseline.
func stateResult(state string, startup time.Duration) Result {
	r := Result{Name: "system", Kind: KindSystemState, Detail: state}
	switch state {
	case "running":
		r.OK = true
	case "degraded":
		r.OK, r.Detail = true, "degraded (failed units are judged against the baseline)"
	case "initializing", "starting":
		r.Detail = fmt.Sprintf("still %s after %v", state, startup)
	}
	return r
}

// anySettling reports whether a unit is on its way to another state.
func anySettling(units []sdbus.UnitStatus) bool {
	for _, u := range units {
		switch u.ActiveState {
		case "activating", "deactivating", "reloading":
			return true
		}
		if u.JobId != 0 {
			return true
		}
	}
	return false
}

// systemState returns the manager's SystemState.
func systemState(ctx context.Context, sd Systemd) (string, error) {
	prop, err := sd.SystemStateContext(ctx)
	if err != nil {
		return "", fmt.Errorf("health: read system state: %w", err)
	}
	state, ok := prop.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("health: system state is a %s, not a string", prop.Value.Signature())
	}
	return state, nil
}

// failedUnits returns the sorted names of failed units as NixOS's
// switch-to-configuration counts them: units in the failed state, and
// services waiting to restart (auto-restart) after a non-zero exit.
func failedUnits(ctx context.Context, sd Systemd) ([]string, error) {
	units, err := sd.ListUnitsContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("health: list units: %w", err)
	}
	failed := []string{}
	for _, u := range units {
		switch {
		case u.ActiveState == "failed":
			failed = append(failed, u.Name)
		case u.SubState == "auto-restart" && strings.HasSuffix(u.Name, ".service"):
			if restartingAfterFailure(ctx, sd, u.Name) {
				failed = append(failed, u.Name)
			}
		}
	}
	sort.Strings(failed)
	return failed, nil
}

// restartingAfterFailure reports whether a service in auto-restart last
// exited non-zero (a unit that vanished in between is not failed).
func restartingAfterFailure(ctx context.Context, sd Systemd, unit string) bool {
	prop, err := sd.GetUnitTypePropertyContext(ctx, unit, "Service", "ExecMainStatus")
	if err != nil {
		return false
	}
	status, ok := prop.Value.Value().(int32)
	return ok && status != 0
}

// runChecks runs the service checks concurrently and waits for all.
func (c *Checker) runChecks(ctx context.Context, checks []CheckSpec, rec *recorder) {
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, cs := range checks {
		wg.Go(func() {
			results[i] = runCheck(ctx, cs)
			rec.report1(results[i])
		})
	}
	wg.Wait()
	rec.appendSilently(results...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recorder collects results in a stable order and passes each to the
// caller's report function, one call at a time.
type recorder struct {
	report func(Result)
	log    hclog.Logger

	mu  sync.Mutex
	rep Report
}

func (r *recorder) setState(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.SystemState = s
}

// add records res and reports it.
func (r *recorder) add(res Result) {
	r.appendSilently(res)
	r.report1(res)
}

func (r *recorder) addFailedUnit(unit string, isNew bool, res Result) {
	r.mu.Lock()
	if isNew {
		r.rep.NewlyFailed = append(r.rep.NewlyFailed, unit)
	} else {
		r.rep.PreviouslyFailed = append(r.rep.PreviouslyFailed, unit)
	}
	r.mu.Unlock()
	r.add(res)
}

func (r *recorder) appendSilently(res ...Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Results = append(r.rep.Results, res...)
}

// report1 logs res and passes it to the caller, serialized.
func (r *recorder) report1(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res.OK {
		r.log.Info("health result", "kind", res.Kind, "name", res.Name, "ok", true, "detail", res.Detail)
	} else {
		r.log.Warn("health result", "kind", res.Kind, "name", res.Name, "ok", false, "detail", res.Detail)
	}
	if r.report != nil {
		r.report(res)
	}
}

// done returns the report with its verdict; an incomplete check is never
// OK.
func (r *recorder) done(complete bool) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	rep.Results = slices.Clone(rep.Results)
	rep.OK = complete && !slices.ContainsFunc(rep.Results, func(res Result) bool { return !res.OK })
	return rep
}
