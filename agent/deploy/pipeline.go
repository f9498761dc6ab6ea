package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// deployment is one pipeline run over a journal record.
type deployment struct {
	e   *Engine
	rec *journal.Record
	r   *run
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
			orNone(s.CurrentPath), s.CurrentGeneration, s.NewPath, s.WouldStop, s.WouldRestart, s.WouldStart)
	case EventAwaiting:
		return fmt.Sprintf("[confirm] awaiting confirmation until %s (generation %d)", ev.Awaiting.Deadline.UTC().Format(time.RFC3339), ev.Awaiting.NewGeneration)
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
	if d.rec.State == journal.StateRunning {
		// Before the switch nothing else writes the record: without this, an
		// agent killed mid-build restarts to a record that cannot say which
		// phase it stopped in.
		if err := d.e.j.Update(d.rec); err != nil {
			d.e.log.Warn("journal update", "id", d.rec.ID, "phase", p, "error", err)
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
		d.e.log.Error("journal update", "id", d.rec.ID, "error", err)
	}
	d.e.mu.Lock()
	d.e.releaseLocked(d.rec.ID)
	d.e.mu.Unlock()
	d.publish(ev, false)
	d.e.log.Info("deployment finished", "id", d.rec.ID, "state", state, "reason", reason)
	d.e.prune()
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
	err := d.phase(PhaseValidate, func() error {
		var hosts []string
		var err error
		if hi, ok := e.nix.(hostInspector); ok {
			// One evaluation for both: it is most of this phase's time.
			if hosts, warnings, err = hi.HostInfo(ctx, req.FlakeRef, req.FlakeAttr); err != nil {
				return fmt.Errorf("evaluating the flake: %w", err)
			}
		} else if hosts, err = e.nix.Hosts(ctx, req.FlakeRef); err != nil {
			return fmt.Errorf("evaluating the flake: %w", err)
		}
		if !slices.Contains(hosts, req.FlakeAttr) {
			return fmt.Errorf("%w: %q is not in nixosConfigurations (hosts: %s)", ErrUnknownHost, req.FlakeAttr, strings.Join(hosts, ", "))
		}
		if _, ok := e.nix.(hostInspector); !ok {
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
		p, err := e.nix.Build(ctx, installable, func(l string) { d.emit(Event{Kind: EventLog, Phase: PhaseBuild, Line: l}) })
		if err != nil {
			return err
		}
		newPath = p
		d.rec.NewPath = p
		d.logf(PhaseBuild, "built %s", p)
		if req.ExpectedPath != "" && req.ExpectedPath != p {
			return fmt.Errorf("%w: built %s, the signed request expects %s", ErrPathMismatch, p, req.ExpectedPath)
		}
		return nil
	})
	if err != nil {
		d.failOrCancel(ctx, PhaseBuild, err)
		return
	}
	if req.Action == ActionBuild {
		d.finish(journal.StateBuilt, "built "+newPath)
		return
	}
	if err := d.dryActivate(ctx, newPath, warnings); err != nil {
		d.failOrCancel(ctx, PhaseDryActivate, err)
		return
	}
	if req.Action == ActionDryActivate {
		d.finish(journal.StateDryActivated, "dry-activated "+newPath+"; nothing changed")
		return
	}
	// From here on the deployment belongs to the agent, not to the caller.
	stopLink()
	mode := "switch"
	if req.Action == ActionBoot {
		mode = "boot"
	}
	d.switchTo(e.ctx, newPath, mode, req.ConfirmTimeout)
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
	d.fail(string(p), err.Error())
}

// dryActivate runs the new system's dry-activate and emits the summary.
func (d *deployment) dryActivate(ctx context.Context, newPath string, warnings []string) error {
	e := d.e
	sum := &Summary{NewPath: newPath, Warnings: warnings, NewVersion: readVersion(newPath)}
	sum.CurrentPath = e.currentSystem()
	sum.CurrentVersion = readVersion(sum.CurrentPath)
	sum.CurrentGeneration = e.currentGenNumber(ctx)
	err := d.phase(PhaseDryActivate, func() error {
		err := e.act.DryActivate(ctx, newPath, func(l string) {
			parseDryActivateLine(l, sum)
			d.emit(Event{Kind: EventLog, Phase: PhaseDryActivate, Line: l})
		})
		if err != nil {
			return fmt.Errorf("dry-activate: %w", err)
		}
		if sum.CurrentPath != "" && sum.CurrentPath != newPath {
			ch, err := e.nix.DiffClosures(ctx, sum.CurrentPath, newPath)
			if err != nil {
				d.emit(Event{Kind: EventWarning, Line: "could not compare closures: " + err.Error()})
			}
			sum.Changes = ch
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.emit(Event{Kind: EventSummary, Summary: sum})
	return nil
}

// parseDryActivateLine collects NixOS's "would ... the following units: a, b" lines.
func parseDryActivateLine(l string, s *Summary) {
	const mid = " the following units: "
	rest, ok := strings.CutPrefix(l, "would ")
	i := strings.Index(rest, mid) // after the prefix: "would the following units: " has none
	if !ok || i < 0 {
		return
	}
	verb := rest[:i]
	var units []string
	for _, u := range strings.Split(rest[i+len(mid):], ",") {
		if u = strings.TrimSpace(u); u != "" {
			units = append(units, u)
		}
	}
	switch verb {
	case "stop":
		s.WouldStop = append(s.WouldStop, units...)
	case "restart":
		s.WouldRestart = append(s.WouldRestart, units...)
	case "start":
		s.WouldStart = append(s.WouldStart, units...)
	case "reload":
		s.WouldReload = append(s.WouldReload, units...)
	}
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
	var baseline any
	prevGen := e.currentGenNumber(ctx)
	rec.PreviousPath = e.currentSystem()
	rec.PreviousGeneration = prevGen
	rec.NewPath = target
	rec.SwitchMode = mode
	rec.SwitchUnit = e.opts.UnitPrefix + "switch-" + rec.ID
	rec.ConfirmTimeout = confirm
	rec.Deadline = e.now().Add(confirm)
	rec.BootToken = e.bootToken
	rec.State = journal.StateSwitching
	rec.Phase = string(PhaseSwitch)

	if mode == "switch" {
		b, err := e.health.Baseline(ctx)
		if err != nil {
			d.emit(Event{Kind: EventWarning, Line: "could not take the health baseline (every failed unit will count): " + err.Error()})
		}
		baseline = b
	}
	// The record is durable before anything on the system changes.
	if err := e.j.Update(rec); err != nil {
		d.fail(string(PhaseSwitch), "could not write the journal record, nothing changed: "+err.Error())
		return
	}
	err := d.phase(PhaseSwitch, func() error {
		d.logf(PhaseSwitch, "previous system %s (generation %d), switching to %s (%s)", orNone(rec.PreviousPath), prevGen, target, mode)
		if err := e.nix.SetProfile(ctx, e.opts.Profile, target); err != nil {
			return fmt.Errorf("setting the system profile: %w", err)
		}
		if g := e.currentGenNumber(ctx); g != 0 {
			rec.NewGeneration = g
			e.j.Update(rec)
		}
		if err := e.act.StartSwitch(ctx, rec.SwitchUnit, target, mode, e.j.LogPath(rec.ID), d.exitPath("switch")); err != nil {
			return fmt.Errorf("starting %s: %w", rec.SwitchUnit, err)
		}
		return nil
	})
	if err != nil {
		d.rollback(ctx, err.Error())
		return
	}
	d.afterSwitchStarted(ctx, baseline)
}

func (d *deployment) exitPath(what string) string {
	return filepath.Join(d.e.j.Dir(d.rec.ID), what+".exit")
}

// afterSwitchStarted waits for the switch unit, then checks and arms the
// dead-man. It is also where a resumed deployment picks up.
func (d *deployment) afterSwitchStarted(ctx context.Context, baseline any) {
	e := d.e
	rec := d.rec
	code, err := d.waitUnit(ctx, rec.SwitchUnit, d.exitPath("switch"), PhaseSwitch)
	if err != nil {
		if ctx.Err() != nil {
			return // agent stopping: resume later
		}
		d.rollback(ctx, err.Error())
		return
	}
	rec.SwitchExitCode = &code
	e.j.Update(rec)
	d.logf(PhaseSwitch, "switch-to-configuration %s exited %d: %s", rec.SwitchMode, code, exitMeaning(code))
	if rec.SwitchMode == "boot" {
		if code != 0 {
			d.restoreBootDefault(ctx, fmt.Sprintf("switch-to-configuration boot exited %d: %s", code, exitMeaning(code)))
			return
		}
		d.finish(journal.StateBootScheduled, fmt.Sprintf("%s is the boot default (generation %d); it becomes active at the next boot", rec.NewPath, rec.NewGeneration))
		return
	}
	switch code {
	case 0:
	case 100:
		d.emit(Event{Kind: EventWarning, Line: "the new system asks for a reboot to be fully active"})
	default:
		d.rollback(ctx, fmt.Sprintf("switch-to-configuration exited %d: %s", code, exitMeaning(code)))
		return
	}
	if cur := e.currentSystem(); cur != rec.NewPath {
		d.rollback(ctx, fmt.Sprintf("after the switch %s points at %s, not %s", e.opts.CurrentSystem, orNone(cur), rec.NewPath))
		return
	}
	var healthy bool
	var reason string
	err = d.phase(PhaseHealth, func() error {
		var err error
		healthy, reason, err = e.health.Check(ctx, baseline, rec.CriticalUnits, func(h HealthReport) {
			d.emit(Event{Kind: EventHealth, Name: h.Name, OK: h.OK, Detail: h.Detail})
		})
		if err != nil {
			return err
		}
		if !healthy {
			return errors.New(reason)
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
	if err := e.j.Update(rec); err != nil {
		d.rollback(ctx, "could not record the confirmation window: "+err.Error())
		return
	}
	e.armTimer(rec)
	d.emit(Event{Kind: EventAwaiting, Awaiting: &Awaiting{Deadline: rec.Deadline, NewPath: rec.NewPath, NewGeneration: rec.NewGeneration}})
}

// exitMeaning explains switch-to-configuration's exit codes.
func exitMeaning(code int) string {
	switch code {
	case 0:
		return "ok"
	case 1:
		return "switch-to-configuration failed"
	case 2:
		return "the activation script failed"
	case 4:
		return "some units failed to start"
	case 100:
		return "a reboot is required"
	case -1:
		return "killed"
	}
	return "unexpected exit code"
}

// waitUnit follows the log and waits for the exit file the switch wrapper
// writes. A unit that is gone without an exit file was killed.
func (d *deployment) waitUnit(ctx context.Context, unit, exitPath string, p Phase) (int, error) {
	e := d.e
	logf, err := os.Open(e.j.LogPath(d.rec.ID))
	if err == nil {
		defer logf.Close()
		logf.Seek(0, io.SeekEnd)
	}
	var pending []byte
	buf := make([]byte, 64<<10)
	follow := func() {
		if logf == nil {
			return
		}
		for {
			n, _ := logf.Read(buf)
			if n == 0 {
				return
			}
			pending = append(pending, buf[:n]...)
			for {
				i := strings.IndexByte(string(pending), '\n')
				if i < 0 {
					break
				}
				line := string(pending[:i])
				pending = pending[i+1:]
				// The unit writes this output into the log itself.
				d.publish(Event{Kind: EventLog, Phase: p, Line: line}, false)
			}
		}
	}
	tick := time.NewTicker(e.opts.PollInterval)
	defer tick.Stop()
	lastCheck := e.now()
	goneSince := time.Time{}
	for {
		follow()
		if b, err := os.ReadFile(exitPath); err == nil {
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				follow()
				return code, nil
			}
		}
		// Ask systemd whether the unit still runs only now and then: the
		// exit file is the normal way to learn the end.
		if now := e.now(); now.Sub(lastCheck) >= unitCheckEvery {
			lastCheck = now
			active, err := e.act.UnitActive(ctx, unit)
			if err == nil && !active {
				if goneSince.IsZero() {
					goneSince = e.now()
				} else if e.now().Sub(goneSince) > time.Second {
					return -1, fmt.Errorf("%s ended without reporting an exit code (killed or never started)", unit)
				}
			} else {
				goneSince = time.Time{}
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// rollback re-activates the recorded previous system.
func (d *deployment) rollback(ctx context.Context, reason string) {
	e := d.e
	rec := d.rec
	rec.State = journal.StateRollingBack
	rec.Reason = reason
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "id", rec.ID, "error", err)
	}
	d.emit(Event{Kind: EventWarning, Line: "rolling back: " + reason})
	failedPhase := rec.Phase // the rollback phase below overwrites it
	prev := rec.PreviousPath
	err := d.phase(PhaseRollback, func() error {
		if prev == "" {
			return errors.New("no previous system was recorded (first deployment on this host)")
		}
		d.logf(PhaseRollback, "restoring %s", prev)
		if err := e.nix.SetProfile(ctx, e.opts.Profile, prev); err != nil {
			return fmt.Errorf("setting the system profile back: %w", err)
		}
		if g := e.currentGenNumber(ctx); g != 0 {
			rec.RollbackGeneration = g
			e.j.Update(rec)
		}
		unit := e.opts.UnitPrefix + "rollback-" + rec.ID
		exit := d.exitPath("rollback")
		if _, err := os.Stat(exit); err != nil {
			if active, _ := e.act.UnitActive(ctx, unit); !active {
				if err := e.act.StartSwitch(ctx, unit, prev, "switch", e.j.LogPath(rec.ID), exit); err != nil {
					return fmt.Errorf("starting %s: %w", unit, err)
				}
			}
		}
		code, err := d.waitUnit(ctx, unit, exit, PhaseRollback)
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
		if ctx.Err() != nil {
			return // agent stopping: resumed as rolling-back at the next start
		}
		rec.RecoveryCommands = recoveryCommands(e.opts.Profile, prev)
		d.finish(journal.StateManual, fmt.Sprintf("%s; rollback failed: %v", reason, err))
		return
	}
	rec.Phase = failedPhase
	d.finish(journal.StateRolledBack, reason)
}

func recoveryCommands(profile, prev string) []string {
	if prev == "" {
		return []string{
			"nix-env -p " + profile + " --list-generations",
			"nix-env -p " + profile + " --switch-generation <N> && " + profile + "/bin/switch-to-configuration switch",
		}
	}
	return []string{
		"nix-env -p " + profile + " --set " + prev,
		prev + "/bin/switch-to-configuration switch",
	}
}

// restoreBootDefault undoes a failed "boot" deployment.
func (d *deployment) restoreBootDefault(ctx context.Context, reason string) {
	e := d.e
	rec := d.rec
	if rec.PreviousPath != "" {
		if err := e.nix.SetProfile(ctx, e.opts.Profile, rec.PreviousPath); err == nil {
			unit := e.opts.UnitPrefix + "rollback-" + rec.ID
			if err := e.act.StartSwitch(ctx, unit, rec.PreviousPath, "boot", e.j.LogPath(rec.ID), d.exitPath("rollback")); err == nil {
				if code, err := d.waitUnit(ctx, unit, d.exitPath("rollback"), PhaseRollback); err == nil && code == 0 {
					d.finish(journal.StateRolledBack, reason+"; the previous boot default is restored")
					return
				}
			}
		}
	}
	rec.RecoveryCommands = recoveryCommands(e.opts.Profile, rec.PreviousPath)
	d.finish(journal.StateManual, reason+"; could not restore the previous boot default")
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
			for _, g := range gens {
				if g.Number < cur && g.Number > want {
					want = g.Number
				}
			}
			if want == 0 {
				return fmt.Errorf("%w: generation %d is the oldest; there is nothing to roll back to", ErrNoSuchGen, cur)
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
		d.rec.NewPath = target.Path
		d.logf(PhaseValidate, "rolling back to generation %d: %s", target.Number, target.Path)
		return nil
	})
	if err != nil {
		d.failOrCancel(ctx, PhaseValidate, err)
		return
	}
	if err := d.dryActivate(ctx, target.Path, nil); err != nil {
		d.failOrCancel(ctx, PhaseDryActivate, err)
		return
	}
	stopLink()
	d.switchTo(e.ctx, target.Path, "switch", req.ConfirmTimeout)
}
