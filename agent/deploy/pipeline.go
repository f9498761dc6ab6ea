package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// deployment is one pipeline run over a journal record.
type deployment struct {
	e   *Engine
	rec *journal.Record
	r   *run
	// resumed: the deployment was resumed by an agent start.
	resumed bool
	// eval is the deploy's one evaluation (evalonce.go): its derivation
	// and out path for whatever needs them before the build (nil when the
	// Nix port cannot evaluate once, and for rollbacks).
	eval *Evaluation
}

func (e *Engine) newDeployment(rec *journal.Record, r *run) *deployment {
	return &deployment{e: e, rec: rec, r: r}
}

// emit stamps, logs and publishes an event.
func (d *deployment) emit(ev Event) {
	d.publish(ev, true)
}

func (d *deployment) publish(ev Event, persist bool) {
	ev.Time = d.e.now()
	ev.DeploymentID = d.rec.ID
	if persist {
		if line := formatEvent(ev); line != "" {
			d.e.appendLog(d.rec.ID, line)
		}
	}
	d.r.append(ev)
}

func (d *deployment) logf(p Phase, format string, args ...any) {
	d.emit(Event{Kind: EventLog, Phase: p, Line: fmt.Sprintf(format, args...)})
}

func formatEvent(ev Event) string {
	switch ev.Kind {
	case EventPhaseStarted:
		return fmt.Sprintf("[%s] started", ev.Phase)
	case EventPhaseFinished:
		if ev.OK {
			return fmt.Sprintf("[%s] done in %v", ev.Phase, ev.Elapsed)
		}
		return fmt.Sprintf("[%s] FAILED after %v: %s", ev.Phase, ev.Elapsed, ev.Err)
	case EventLog:
		return fmt.Sprintf("[%s] %s", ev.Phase, ev.Line)
	case EventWarning:
		return "[warning] " + ev.Line
	case EventHealth:
		v := "ok"
		if !ev.OK {
			v = "FAILED"
		}
		return fmt.Sprintf("[health] %s: %s %s", ev.Name, v, ev.Detail)
	case EventSummary:
		s := ev.Summary
		return fmt.Sprintf("[summary] current %s (generation %d) -> new %s; stop %v restart %v start %v",
			orNone(s.CurrentPath), s.CurrentGeneration, s.NewPath, s.WouldStop, s.WouldRestart, s.WouldStart) + summaryNotes(s)
	case EventAwaiting:
		if ev.Awaiting.NewGeneration == 0 {
			return fmt.Sprintf("[confirm] awaiting confirmation until %s (the confirm makes it the system profile and the boot default)", ev.Awaiting.Deadline.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("[confirm] awaiting confirmation until %s (generation %d)", ev.Awaiting.Deadline.UTC().Format(time.RFC3339), ev.Awaiting.NewGeneration)
	case EventAwaitingApproval:
		return fmt.Sprintf("[approve] awaiting approval of %s until %s; nothing changes before it", ev.Approval.NewPath, ev.Approval.Deadline.UTC().Format(time.RFC3339))
	case EventResult:
		r := ev.Result
		line := fmt.Sprintf("[result] %s", r.Outcome)
		if r.Message != "" {
			line += ": " + r.Message
		}
		for _, c := range r.RecoveryCommands {
			line += "\n[result] recover with: " + c
		}
		return line
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// phase runs f as phase p, emitting start and finish.
func (d *deployment) phase(p Phase, f func() error) error {
	start := d.e.now()
	d.rec.Phase = string(p)
	if d.rec.State == journal.StateRunning || d.rec.State == journal.StateSwitching {
		// Before the switch nothing else writes the record: without this, an
		// agent killed mid-build restarts to a record that cannot say which
		// phase it stopped in (and a host that lost power during health, one
		// that says "switch").
		if err := d.e.j.Update(d.rec); err != nil {
			d.e.log.Warn("journal update", "deployment", d.rec.ID, "phase", p, "error", err)
		}
	}
	d.emit(Event{Kind: EventPhaseStarted, Phase: p})
	err := f()
	ev := Event{Kind: EventPhaseFinished, Phase: p, OK: err == nil, Elapsed: elapsedSince(start, d.e.now())}
	if err != nil {
		ev.Err = err.Error()
	}
	d.emit(ev)
	return err
}

// finish moves the record to a final state and publishes the result.
func (d *deployment) finish(state journal.State, reason string) {
	d.rec.State = state
	d.rec.Reason = reason
	// The result line is in the log before the record turns final: whoever
	// stops reading the log when the record is final (logs --follow) gets
	// the whole of it.
	ev := Event{Kind: EventResult, Result: d.e.resultOf(d.rec), DeploymentID: d.rec.ID, Time: d.e.now()}
	d.e.appendLog(d.rec.ID, formatEvent(ev))
	if err := d.e.j.Update(d.rec); err != nil {
		d.e.log.Error("journal update", "deployment", d.rec.ID, "error", err)
	}
	d.clearDeadman(d.e.ctx) // the outcome is recorded: the dead-man has nothing left to do
	d.e.mu.Lock()
	d.e.releaseLocked(d.rec.ID)
	d.e.mu.Unlock()
	d.e.dropRoots(d.rec.ID)
	d.publish(ev, false)
	d.e.observeFinal(d.rec, ev.Result)
	d.e.log.Info("deployment finished", "deployment", d.rec.ID, "state", state, "reason", reason)
	d.e.prune()
	d.restartIntoCurrentAgent()
}

func (d *deployment) fail(phase string, reason string) {
	d.rec.Phase = phase
	d.finish(journal.StateFailed, reason)
}

// pipeline runs a submitted request. ctx ends when the caller goes away
// (before the switch) or the engine closes; stopLink detaches the deployment
// from the caller once the switch is about to start.
func (d *deployment) pipeline(ctx context.Context, stopLink func() bool, req Request) {
	e := d.e
	if req.Action == ActionRollback {
		d.requestedRollback(ctx, stopLink, req)
		return
	}
	var newPath string
	var warnings []string
	var eval *Evaluation // evalonce.go: the one evaluation, when the port has it
	err := d.phase(PhaseValidate, func() error {
		var hosts []string
		var err error
		var one bool
		if eval, one, err = d.evaluate(ctx, req); one {
			if err != nil {
				return err
			}
			warnings = eval.Warnings
		} else if hi, ok := e.nix.(hostInspector); ok {
			// One evaluation for both: it is most of this phase's time.
			if hosts, warnings, err = hi.HostInfo(ctx, req.FlakeRef, req.FlakeAttr); err != nil {
				return fmt.Errorf("evaluating the flake: %w", err)
			}
		} else if hosts, err = e.nix.Hosts(ctx, req.FlakeRef); err != nil {
			return fmt.Errorf("evaluating the flake: %w", err)
		}
		if eval == nil && !slices.Contains(hosts, req.FlakeAttr) {
			return fmt.Errorf("%w: %q is not in nixosConfigurations (hosts: %s)", ErrUnknownHost, req.FlakeAttr, strings.Join(hosts, ", "))
		}
		if _, ok := e.nix.(hostInspector); !ok && eval == nil {
			if warnings, err = e.nix.Warnings(ctx, req.FlakeRef, req.FlakeAttr); err != nil {
				return fmt.Errorf("evaluating config.warnings: %w", err)
			}
		}
		for _, w := range warnings {
			d.emit(Event{Kind: EventWarning, Line: w})
		}
		if req.FailOnWarnings && len(warnings) > 0 {
			return fmt.Errorf("%d warning(s) and --fail-on-warnings was given", len(warnings))
		}
		return nil
	})
	if err != nil {
		d.failOrCancel(ctx, PhaseValidate, err)
		return
	}
	err = d.phase(PhaseBuild, func() error {
		installable := req.FlakeRef + "#nixosConfigurations." + req.FlakeAttr + ".config.system.build.toplevel"
		// cache.go: the system substituted from a build peer, if one has it;
		// else the evaluated derivation is built (evalonce.go).
		p, done := d.fromPeers(ctx, req, installable)
		var err error
		if p == "" {
			p, err = d.build(ctx, req, eval, func(l string) { d.emit(Event{Kind: EventLog, Phase: PhaseBuild, Line: l}) })
		}
		done(p, err)
		if err != nil {
			return err
		}
		newPath = p
		d.rec.NewPath = p
		d.logf(PhaseBuild, "built %s", p)
		d.addRoot(rootNew, p)
		if req.ExpectedPath != "" && req.ExpectedPath != p {
			return fmt.Errorf("%w: built %s, the signed request expects %s", ErrPathMismatch, p, req.ExpectedPath)
		}
		return checkSystem(p)
	})
	if err != nil {
		d.failOrCancel(ctx, PhaseBuild, err)
		return
	}
	if req.Action == ActionBuild {
		d.finish(journal.StateBuilt, "built "+newPath)
		return
	}
	mode := "switch"
	if req.Action == ActionBoot {
		mode = "boot"
	}
	active := d.activation(ctx, newPath, mode, PhaseBuild)
	sum, err := d.dryActivate(ctx, active, warnings)
	if err != nil {
		d.failOrCancel(ctx, PhaseDryActivate, err)
		return
	}
	if req.Action == ActionDryActivate {
		d.finish(journal.StateDryActivated, dryActivatedMessage(sum))
		return
	}
	if err := d.refuseStoppingAgent(sum, req); err != nil {
		d.fail(string(PhaseDryActivate), err.Error())
		return
	}
	// From here on the deployment belongs to the agent, not to the caller.
	stopLink()
	if req.AwaitApproval && !d.awaitApproval(e.ctx, active, req.ApprovalTimeout) {
		return
	}
	d.switchTo(e.ctx, active, d.switchMode(req.Action, sum), req.ConfirmTimeout)
}

func (d *deployment) failOrCancel(ctx context.Context, p Phase, err error) {
	if ctx.Err() != nil && d.e.ctx.Err() == nil {
		d.fail(string(p), "the controller went away during "+string(p)+"; nothing was changed")
		return
	}
	if d.e.ctx.Err() != nil {
		// The agent is stopping; the record stays "running" and is marked
		// failed at the next start.
		return
	}
	if d.interruptedByShutdown(d.e.ctx, string(p)+" failed: "+err.Error()) {
		return // the record stays "running": failed, nothing changed, after the boot
	}
	d.fail(string(p), err.Error())
}

// dryActivate runs the new system's dry-activate and emits the summary.
func (d *deployment) dryActivate(ctx context.Context, newPath string, warnings []string) (*Summary, error) {
	e := d.e
	sum := &Summary{NewPath: newPath, Warnings: warnings, NewVersion: readVersion(newPath)}
	sum.CurrentPath = e.currentSystem()
	sum.CurrentVersion = readVersion(sum.CurrentPath)
	sum.CurrentGeneration = e.currentGenNumber(ctx)
	err := d.phase(PhaseDryActivate, func() error {
		err := d.runDryActivate(ctx, newPath, func(l string) { parseDryActivateLine(l, sum) })
		code, ok := exitCodeOf(err)
		switch {
		case ok && code == stcRebootRequired:
			sum.NotActivatable = "dry-activate exited 100: the new system's init is incompatible with the running one"
		case ok && code == stcLocked:
			// dry-activate takes switch-to-configuration's lock too.
			return fmt.Errorf("%w (dry-activate could not take %s: %v); nothing was changed", ErrSwitchLocked, e.opts.SwitchLock, err)
		case err != nil:
			return fmt.Errorf("dry-activate: %w", err)
		}
		if err := d.checkInhibitors(ctx, newPath, sum); err != nil {
			return err
		}
		if err := d.checkNewAgent(ctx, newPath); err != nil {
			return err
		}
		sum.RebootRequired = rebootRequired(e.opts.BootedSystem, newPath)
		sum.StopsAgent = e.stopsAgent(sum, newPath)
		if sum.CurrentPath != "" && sum.CurrentPath != newPath {
			sized := e.closureSizes(ctx, sum) // alongside diff-closures
			ch, err := e.nix.DiffClosures(ctx, sum.CurrentPath, newPath)
			if err != nil {
				d.emit(Event{Kind: EventWarning, Line: "could not compare closures: " + err.Error()})
			}
			sum.Changes = ch
			<-sized
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.emit(Event{Kind: EventSummary, Summary: sum})
	return sum, nil
}

func readVersion(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(path, "nixos-version"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// switchTo records, then activates target, checks it and starts the
// confirmation window. It is used by deploys and requested rollbacks.
func (d *deployment) switchTo(ctx context.Context, target, mode string, confirm time.Duration) {
	e := d.e
	rec := d.rec
	if held, err := switchLockHeld(e.opts.SwitchLock); held {
		d.fail(string(PhaseSwitch), fmt.Sprintf("%v (%s is held, e.g. by nixos-rebuild or system.autoUpgrade); nothing was changed, try again when it is done", ErrSwitchLocked, e.opts.SwitchLock))
		return
	} else if err != nil {
		d.emit(Event{Kind: EventWarning, Line: "could not test the switch lock: " + err.Error()})
	}
	prevGen := e.currentGenNumber(ctx)
	d.recordPrevious(ctx)
	rec.PreviousGeneration = prevGen
	rec.NewPath = target
	// A live switch runs "test": the profile and the boot default stay on
	// the previous system until the confirm (testboot.go).
	live := mode == "switch"
	rec.ProfileDeferred = live
	rec.SwitchMode = stcMode(mode)
	rec.SwitchUnit = e.opts.UnitPrefix + "switch-" + rec.ID
	rec.ConfirmTimeout = confirm
	rec.Deadline = e.now().Add(confirm)
	rec.BootToken = e.bootToken
	rec.State = journal.StateSwitching
	rec.Phase = string(PhaseSwitch)
	d.addRoot(rootNew, rec.NewProfile())
	d.addRoot(rootPrevious, rec.PreviousProfile())

	if live && rec.PreviousPath != "" && e.deadman() != nil {
		rec.DeadmanUnit = e.deadmanUnit(rec.ID)
	}
	if live {
		failed, err := e.health.FailedUnits(ctx)
		if err != nil {
			d.emit(Event{Kind: EventWarning, Line: "could not take the health baseline (every failed unit will count): " + err.Error()})
		}
		rec.BaselineFailed = failed
	}
	// The record is durable before anything on the system changes.
	if err := e.j.Update(rec); err != nil {
		d.fail(string(PhaseSwitch), "could not write the journal record, nothing changed: "+err.Error())
		return
	}
	if err := d.armDeadman(ctx, e.opts.SwitchTimeout+confirm, true); err != nil {
		d.fail(string(PhaseSwitch), err.Error()+"; nothing was changed")
		return
	}
	err := d.phase(PhaseSwitch, func() error {
		d.logf(PhaseSwitch, "previous system %s (generation %d), switching to %s (%s)", orNone(rec.PreviousPath), prevGen, target, rec.SwitchMode)
		if !live {
			if err := e.nix.SetProfile(ctx, e.opts.Profile, rec.NewProfile()); err != nil {
				return fmt.Errorf("setting the system profile: %w", err)
			}
			if g := e.currentGenNumber(ctx); g != 0 {
				rec.NewGeneration = g
				e.j.Update(rec)
			}
		}
		if err := e.act.StartUnit(ctx, d.unitSpec(rec.SwitchUnit, target, rec.SwitchMode)); err != nil {
			return fmt.Errorf("starting %s: %w", rec.SwitchUnit, err)
		}
		return nil
	})
	if err != nil {
		d.rollback(ctx, err.Error())
		return
	}
	d.afterSwitchStarted(ctx)
}

// afterSwitchStarted waits for the switch unit, then checks and arms the
// dead-man. It is also where a resumed deployment picks up.
func (d *deployment) afterSwitchStarted(ctx context.Context) {
	e := d.e
	rec := d.rec
	if d.deadmanStarted(ctx) {
		return
	}
	code, err := d.switchExit(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // agent stopping: resume later
		}
		if rec.SwitchMode == "boot" {
			d.restoreBootDefault(ctx, err.Error())
			d.clearUnit(ctx, rec.SwitchUnit)
			return
		}
		d.rollback(ctx, err.Error()) // clears the unit once the reason is recorded
		return
	}
	d.logf(PhaseSwitch, "switch-to-configuration %s exited %d: %s", rec.SwitchMode, code, exitMeaning(code))
	if rec.SwitchMode == "boot" {
		d.judgeBootExit(ctx, code)
		return
	}
	if !d.judgeSwitchExit(ctx, code) {
		return
	}
	// The dead-man's window counts from the switch's end.
	rec.Deadline = e.now().Add(rec.ConfirmTimeout)
	e.j.Update(rec)
	if !d.rearmDeadman(ctx, rec.Deadline.Sub(e.now())) {
		return
	}
	if cur := e.currentSystem(); cur != rec.NewPath {
		d.rollback(ctx, fmt.Sprintf("after the switch %s points at %s, not %s", e.opts.CurrentSystem, orNone(cur), rec.NewPath))
		return
	}
	err = d.phase(PhaseHealth, func() error {
		v, err := e.health.Check(ctx, rec.BaselineFailed, rec.CriticalUnits, func(h HealthReport) {
			d.emit(Event{Kind: EventHealth, Name: h.Name, OK: h.OK, Detail: h.Detail})
		})
		if err != nil {
			return err
		}
		d.judgeFailedUnits(v)
		if !v.OK {
			return errors.New(v.Reason)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.rollback(ctx, "health check failed: "+err.Error())
		return
	}
	// The window starts now that the new system is up and healthy.
	rec.Deadline = e.now().Add(rec.ConfirmTimeout)
	rec.State = journal.StateAwaiting
	rec.Phase = string(PhaseConfirm)
	if d.handOver(ctx) {
		return // the new agent opens the window for confirmations
	}
	if err := e.j.Update(rec); err != nil {
		d.rollback(ctx, "could not record the confirmation window: "+err.Error())
		return
	}
	if !d.rearmDeadman(ctx, rec.Deadline.Sub(e.now())) { // the record's deadline, to the microsecond
		return
	}
	e.armTimer(rec)
	if len(rec.RebootRequired) > 0 {
		d.emit(Event{Kind: EventWarning, Line: "reboot required: the new " + strings.Join(rec.RebootRequired, ", ") + " differ from the booted system's and take effect at the next boot"})
	}
	d.emit(Event{Kind: EventAwaiting, Awaiting: &Awaiting{Deadline: rec.Deadline, NewPath: rec.NewPath, NewGeneration: rec.NewGeneration}})
}

// switchExit waits for the switch unit and returns its exit code, recorded
// in the journal before the unit is cleared. A code recorded by an earlier
// run of the agent is taken as it is.
func (d *deployment) switchExit(ctx context.Context) (int, error) {
	e := d.e
	rec := d.rec
	if rec.SwitchExitCode != nil {
		return *rec.SwitchExitCode, nil
	}
	st, err := d.waitUnit(ctx, rec.SwitchUnit, e.j.LogPath(rec.ID), false, PhaseSwitch, nil)
	if err != nil {
		return -1, err
	}
	code, err := d.exitOf(st, "switch-to-configuration "+rec.SwitchMode, rec.SwitchUnit)
	if err != nil {
		return -1, err
	}
	rec.SwitchExitCode = &code
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
		return code, nil // keep the unit: its record is the only one
	}
	d.clearUnit(ctx, rec.SwitchUnit)
	return code, nil
}

// waitUnit follows the file a unit writes its output to, passing each line
// on as a log event (persisted too when persist is set: the switch writes
// into the deployment log itself, dry-activate into a file of its own) and
// to onLine if set, and waits until systemd reports the unit ended or gone.
// It fails only when ctx ends. Output already in the file when it starts is
// skipped only for the deployment log (persist false).
func (d *deployment) waitUnit(ctx context.Context, unit, output string, persist bool, p Phase, onLine func(string)) (UnitStatus, error) {
	e := d.e
	out := newFollower(output, !persist)
	defer out.close()
	emit := func(line string) {
		if onLine != nil {
			onLine(line)
		}
		d.publish(Event{Kind: EventLog, Phase: p, Line: line}, persist)
	}
	tick := time.NewTicker(e.opts.PollInterval)
	defer tick.Stop()
	// systemd is asked at every tick at first (most switches are quick),
	// then less and less often, down to every unitCheckEvery.
	every, wait := 1, 0
	for {
		out.lines(emit)
		if wait--; wait < 0 {
			st, err := e.act.UnitStatus(ctx, unit)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					e.log.Warn("reading the switch unit", "deployment", d.rec.ID, "unit", unit, "error", err)
				}
			case st.State != UnitRunning:
				out.lines(emit)
				out.flush(emit)
				return st, nil
			}
			every = min(2*every, max(1, int(unitCheckEvery/e.opts.PollInterval)))
			wait = every - 1
		}
		select {
		case <-ctx.Done():
			return UnitStatus{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// exitOf is the exit code of a unit that ended, or an error saying why it
// has none: what ran (e.g. "switch-to-configuration switch") was killed,
// stopped at its deadline, or interrupted.
func (d *deployment) exitOf(st UnitStatus, what, unit string) (int, error) {
	switch st.State {
	case UnitExited:
		return st.ExitCode, nil
	case UnitKilled:
		return -1, fmt.Errorf("%s was killed by %s", what, st.Signal)
	case UnitTimedOut:
		deadline := st.Deadline
		if deadline == 0 {
			deadline = d.e.opts.SwitchTimeout
		}
		return -1, fmt.Errorf("%s did not finish within %v: systemd stopped it", what, deadline)
	case UnitFailed:
		return -1, fmt.Errorf("%s did not run: unit %s ended with result %q", what, unit, st.Result)
	}
	return -1, fmt.Errorf("%s was interrupted: unit %s is gone without an exit status (the service manager restarted, the host rebooted or the unit was stopped)", what, unit)
}

// unitSpec is the transient unit running toplevel's switch-to-configuration
// mode for this deployment; its output goes to the deployment log.
func (d *deployment) unitSpec(unit, toplevel, mode string) UnitSpec {
	return UnitSpec{
		Unit: unit, Toplevel: toplevel, Mode: mode, Output: d.e.j.LogPath(d.rec.ID),
		InstallBootloader: d.rec.InstallBootloader, Deadline: d.e.opts.SwitchTimeout,
	}
}

// clearUnit drops systemd's record of a unit whose end is recorded. A
// failure leaves a unit loaded until the next boot, which is only noise.
func (d *deployment) clearUnit(ctx context.Context, unit string) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), clearTimeout)
		defer cancel()
	}
	if err := d.e.act.ClearUnit(ctx, unit); err != nil {
		d.e.log.Warn("clearing the switch unit", "deployment", d.rec.ID, "unit", unit, "error", err)
	}
}

// clearTimeout bounds clearing a unit once the deployment's ctx has ended.
const clearTimeout = 30 * time.Second

// dryActivateUnit is the name of the deployment's dry-activate unit.
func (e *Engine) dryActivateUnit(id string) string {
	return e.opts.UnitPrefix + "dry-activate-" + id
}

// runDryActivate runs the new system's dry-activate in a transient unit like
// the switch's (the same environment), streaming its output as log events
// and passing each line to onLine. When ctx ends first the unit is stopped.
func (d *deployment) runDryActivate(ctx context.Context, toplevel string, onLine func(string)) error {
	return d.runSTC(ctx, toplevel, "dry-activate", onLine)
}

// runSTC runs toplevel's switch-to-configuration mode (dry-activate or
// check) in a transient unit, as runDryActivate describes. A non-zero exit
// is an *ExitCodeError.
func (d *deployment) runSTC(ctx context.Context, toplevel, mode string, onLine func(string)) error {
	e := d.e
	spec := d.unitSpec(e.dryActivateUnit(d.rec.ID), toplevel, mode)
	if mode == "check" {
		spec.Unit = e.checkUnit(d.rec.ID)
	}
	spec.Output = filepath.Join(e.j.Dir(d.rec.ID), mode+".out")
	defer d.clearUnit(ctx, spec.Unit)
	if err := e.act.StartUnit(ctx, spec); err != nil {
		return fmt.Errorf("starting %s: %w", spec.Unit, err)
	}
	var last []string
	st, err := d.waitUnit(ctx, spec.Unit, spec.Output, true, PhaseDryActivate, func(l string) {
		if last = append(last, l); len(last) > 3 {
			last = last[1:]
		}
		onLine(l)
	})
	if err != nil {
		return err
	}
	what := toplevel + "/bin/switch-to-configuration " + mode
	code, err := d.exitOf(st, what, spec.Unit)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitCodeError{What: what, Code: code, Tail: strings.Join(last, " / ")}
	}
	return nil
}

// rollback re-activates the recorded previous system.
func (d *deployment) rollback(ctx context.Context, reason string) {
	e := d.e
	rec := d.rec
	if d.interruptedByShutdown(ctx, "would roll back: "+reason) {
		return // decided after the boot (resumeAfterShutdown)
	}
	rec.State = journal.StateRollingBack
	rec.Reason = reason
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
	}
	d.emit(Event{Kind: EventWarning, Line: "rolling back: " + reason})
	if rec.SwitchUnit != "" {
		// The switch's end is recorded (its exit code or the reason above);
		// a switch unit still running would hold switch-to-configuration's lock.
		d.clearUnit(ctx, rec.SwitchUnit)
	}
	failedPhase := rec.Phase // the rollback phase below overwrites it
	prev := rec.PreviousPath
	err := d.phase(PhaseRollback, func() error {
		if prev == "" {
			return errors.New("no previous system was recorded (first deployment on this host)")
		}
		if d.bootedPrevious() {
			rec.RolledBackBy = RolledBackByReboot
			d.logf(PhaseRollback, "the host rebooted into %s, its boot default: nothing to switch", prev)
			return nil
		}
		d.logf(PhaseRollback, "restoring %s", prev)
		if !rec.ProfileDeferred {
			d.restoreProfile(ctx) // a record of the old order: the profile was moved
		}
		code, err := d.rollbackSwitch(ctx, prev, "switch")
		if err != nil {
			return err
		}
		switch code {
		case 0, 100:
		case 4:
			d.emit(Event{Kind: EventWarning, Line: "the previous system is active again, but some of its units failed to start"})
		default:
			return fmt.Errorf("the previous system's switch-to-configuration exited %d: %s", code, exitMeaning(code))
		}
		if cur := e.currentSystem(); cur != prev {
			return fmt.Errorf("%s points at %s after the rollback, not %s", e.opts.CurrentSystem, orNone(cur), prev)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil || d.interruptedByShutdown(ctx, "the rollback failed: "+err.Error()) {
			return // agent stopping or host going down: resumed as rolling-back at the next start
		}
		rec.RecoveryCommands = recoveryCommands(e.opts.Profile, rec.PreviousProfile(), prev)
		d.finish(journal.StateManual, fmt.Sprintf("%s; rollback failed: %v", reason, err))
		d.clearUnit(ctx, d.rollbackUnit())
		return
	}
	rec.Phase = failedPhase
	d.finish(journal.StateRolledBack, d.withProfileNote(reason)+rolledBackNote(rec.RolledBackBy))
	d.clearUnit(ctx, d.rollbackUnit())
}

func (d *deployment) rollbackUnit() string {
	return d.e.opts.UnitPrefix + "rollback-" + d.rec.ID
}

// rollbackSwitch runs prev's switch-to-configuration mode in the rollback
// unit and returns its exit code. A rollback unit that is still loaded (the
// agent restarted during the rollback) is awaited, not started again. The
// caller clears the unit once the outcome is in the journal.
func (d *deployment) rollbackSwitch(ctx context.Context, prev, mode string) (int, error) {
	e := d.e
	if mode == "switch" && d.rec.DeadmanUnit != "" && e.deadman() != nil {
		return d.deadmanRollback(ctx)
	}
	unit := d.rollbackUnit()
	st, err := e.act.UnitStatus(ctx, unit)
	if err != nil {
		return -1, fmt.Errorf("reading %s: %w", unit, err)
	}
	if st.State == UnitGone {
		if err := e.act.StartUnit(ctx, d.unitSpec(unit, prev, mode)); err != nil {
			return -1, fmt.Errorf("starting %s: %w", unit, err)
		}
	}
	if st, err = d.waitUnit(ctx, unit, e.j.LogPath(d.rec.ID), false, PhaseRollback, nil); err != nil {
		return -1, err
	}
	return d.exitOf(st, "the previous system's switch-to-configuration "+mode, unit)
}

// recoveryCommands put base (the toplevel the profile holds) back into the
// profile and switch to prev (base or one of its specialisations).
func recoveryCommands(profile, base, prev string) []string {
	if prev == "" {
		return []string{
			"nix-env -p " + profile + " --list-generations",
			"nix-env -p " + profile + " --switch-generation <N> && " + profile + "/bin/switch-to-configuration switch",
		}
	}
	return []string{
		"nix-env -p " + profile + " --set " + base,
		prev + "/bin/switch-to-configuration switch",
	}
}

// restoreBootDefault undoes a failed "boot" deployment.
func (d *deployment) restoreBootDefault(ctx context.Context, reason string) {
	e := d.e
	rec := d.rec
	if d.interruptedByShutdown(ctx, "would restore the boot default: "+reason) {
		return
	}
	if rec.PreviousPath != "" {
		d.restoreProfile(ctx)
		code, err := d.rollbackSwitch(ctx, rec.PreviousPath, "boot")
		if err != nil && ctx.Err() != nil {
			return // agent stopping: resumed at the next start
		}
		if err == nil && code == 0 {
			d.finish(journal.StateRolledBack, d.withProfileNote(reason+"; the previous boot default is restored"))
			d.clearUnit(ctx, d.rollbackUnit())
			return
		}
	}
	if d.interruptedByShutdown(ctx, "could not restore the previous boot default: "+reason) {
		return
	}
	rec.RecoveryCommands = recoveryCommands(e.opts.Profile, rec.PreviousProfile(), rec.PreviousPath)
	d.finish(journal.StateManual, reason+"; could not restore the previous boot default")
	d.clearUnit(ctx, d.rollbackUnit())
}

// requestedRollback switches to an earlier generation with the same
// protection as a deploy.
func (d *deployment) requestedRollback(ctx context.Context, stopLink func() bool, req Request) {
	e := d.e
	var target Generation
	err := d.phase(PhaseValidate, func() error {
		cur, gens := e.currentGeneration(ctx)
		if len(gens) == 0 {
			return fmt.Errorf("%w: the profile %s has no generations", ErrNoSuchGen, e.opts.Profile)
		}
		want := req.Generation
		if want == 0 {
			var err error
			if want, err = e.previousGeneration(ctx, cur, gens); err != nil {
				return err
			}
		}
		for _, g := range gens {
			if g.Number == want {
				target = g
			}
		}
		if target.Path == "" {
			return fmt.Errorf("%w: generation %d (generations: %s)", ErrNoSuchGen, want, strings.Join(genNumbers(gens), ", "))
		}
		if target.Current {
			return fmt.Errorf("%w: generation %d is already the current one", ErrInvalidRequest, want)
		}
		if err := checkSystem(target.Path); err != nil {
			return err
		}
		d.rec.NewPath = target.Path
		d.logf(PhaseValidate, "rolling back to generation %d: %s", target.Number, target.Path)
		return nil
	})
	if err != nil {
		d.failOrCancel(ctx, PhaseValidate, err)
		return
	}
	active := d.activation(ctx, target.Path, "switch", PhaseValidate)
	sum, err := d.dryActivate(ctx, active, nil)
	if err != nil {
		d.failOrCancel(ctx, PhaseDryActivate, err)
		return
	}
	if err := d.refuseStoppingAgent(sum, req); err != nil {
		d.fail(string(PhaseDryActivate), err.Error())
		return
	}
	stopLink()
	d.switchTo(e.ctx, active, d.switchMode(req.Action, sum), req.ConfirmTimeout)
}
