package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pantheros/panther/agent/journal"
)

// This file judges what switch-to-configuration says: the dry-activate
// summary, the switch inhibitors, its lock and its exit codes, measured
// against NixOS's switch-to-configuration-ng.

// Exit codes of switch-to-configuration (switch-to-configuration-ng's
// main.rs; its die() exits with errno, hence 11 for a held lock).
const (
	stcOK             = 0
	stcFailed         = 1   // usage, a pre-switch check refused, boot loader install failed, internal error
	stcActivateFailed = 2   // the activation script failed
	stcUnitsFailed    = 4   // units failed after the switch (also ones that failed before it)
	stcLocked         = 11  // EAGAIN: another switch holds /run/nixos/switch-to-configuration.lock
	stcRebootRequired = 100 // init interface changed: boot default set, nothing activated
)

// exitMeaning explains switch-to-configuration's exit codes.
func exitMeaning(code int) string {
	switch code {
	case stcOK:
		return "ok"
	case stcFailed:
		return "switch-to-configuration failed (a pre-switch check refused, the boot loader could not be installed, or an internal error)"
	case stcActivateFailed:
		return "the activation script failed"
	case stcUnitsFailed:
		return "some units failed after the switch"
	case stcLocked:
		return "another switch-to-configuration holds its lock"
	case stcRebootRequired:
		return "boot default set but not activated: a reboot is required"
	case -1:
		return "killed"
	}
	if code > 0 && code < 128 {
		return fmt.Sprintf("switch-to-configuration stopped on a system error (%v)", syscall.Errno(code))
	}
	return "unexpected exit code"
}

// ExitCodeError is a switch-to-configuration run (dry-activate, check) that
// exited non-zero.
type ExitCodeError struct {
	What string // e.g. "<toplevel>/bin/switch-to-configuration dry-activate"
	Code int
	Tail string // its last lines of output
}

func (e *ExitCodeError) Error() string {
	msg := fmt.Sprintf("%s exited %d", e.What, e.Code)
	if e.Tail != "" {
		msg += ": " + e.Tail
	}
	return msg
}

// exitCodeOf returns the exit code err carries, if any.
func exitCodeOf(err error) (int, bool) {
	var ec *ExitCodeError
	if errors.As(err, &ec) {
		return ec.Code, true
	}
	return 0, false
}

// parseDryActivateLine collects dry-activate's lines into s: "would
// <verb> the following units: a, b", "would NOT stop the following changed
// units: a, b", "would activate the configuration...", "would restart
// systemd".
func parseDryActivateLine(l string, s *Summary) {
	l = strings.TrimSpace(l)
	switch {
	case strings.HasPrefix(l, "would activate the configuration"):
		s.WouldActivate = true
		return
	case l == "would restart systemd":
		s.WouldRestartSystemd = true
		return
	}
	if !strings.HasPrefix(l, "would ") {
		return
	}
	verb, list, ok := strings.Cut(l[len("would "):], " the following units: ")
	if !ok {
		if list, ok = strings.CutPrefix(l, "would NOT stop the following changed units: "); !ok {
			return
		}
		verb = "NOT stop"
	}
	var units []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			units = append(units, u)
		}
	}
	switch verb {
	case "stop":
		s.WouldStop = append(s.WouldStop, units...)
	case "NOT stop":
		s.WouldNotStop = append(s.WouldNotStop, units...)
	case "restart":
		s.WouldRestart = append(s.WouldRestart, units...)
	case "start":
		s.WouldStart = append(s.WouldStart, units...)
	case "reload":
		s.WouldReload = append(s.WouldReload, units...)
	}
}

// rebootParts are the parts of a system that only a reboot brings up, as
// NixOS's system.autoUpgrade compares them.
var rebootParts = []string{"kernel", "initrd", "kernel-modules"}

// rebootRequired lists the parts of newPath that differ from the booted
// system (nil when the booted system is unknown).
func rebootRequired(booted, newPath string) []string {
	if _, err := os.Stat(booted); err != nil {
		return nil
	}
	var diff []string
	for _, part := range rebootParts {
		a, errA := filepath.EvalSymlinks(filepath.Join(booted, part))
		b, errB := filepath.EvalSymlinks(filepath.Join(newPath, part))
		if errA != nil && errB != nil {
			continue // neither has it
		}
		if errA != nil || errB != nil || (a != b && !sameTree(a, b, sameTreeBudget)) {
			diff = append(diff, part)
		}
	}
	return diff
}

// sameTreeBudget bounds how much sameTree reads: on NixOS the parts are
// links into the store, and two different paths are two different builds.
const sameTreeBudget = 1 << 20

// sameTree reports whether a and b hold the same files with the same
// contents, reading at most budget bytes (past it they count as different).
func sameTree(a, b string, budget int64) bool {
	ok, _ := sameTreeN(a, b, &budget)
	return ok
}

func sameTreeN(a, b string, budget *int64) (bool, error) {
	ia, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	switch {
	case ia.IsDir() && ib.IsDir():
		ea, err := os.ReadDir(a)
		if err != nil {
			return false, err
		}
		eb, err := os.ReadDir(b)
		if err != nil || len(ea) != len(eb) {
			return false, err
		}
		for i := range ea {
			if ea[i].Name() != eb[i].Name() {
				return false, nil
			}
			if ok, err := sameTreeN(filepath.Join(a, ea[i].Name()), filepath.Join(b, eb[i].Name()), budget); !ok {
				return false, err
			}
		}
		return true, nil
	case ia.Mode().IsRegular() && ib.Mode().IsRegular():
		if ia.Size() != ib.Size() {
			return false, nil
		}
		if *budget -= 2 * ia.Size(); *budget < 0 {
			return false, nil
		}
		ca, err := os.ReadFile(a)
		if err != nil {
			return false, err
		}
		cb, err := os.ReadFile(b)
		if err != nil {
			return false, err
		}
		return string(ca) == string(cb), nil
	}
	return false, nil
}

// stopsAgent says why switching to newPath would stop or remove the agent's
// unit ("" if it would not).
func (e *Engine) stopsAgent(sum *Summary, newPath string) string {
	unit := e.opts.AgentUnit
	if slices.Contains(sum.WouldStop, unit) {
		return "dry-activate would stop " + unit
	}
	// switch-to-configuration stops a unit whose file disappears; only a
	// unit the running system provides can disappear.
	if hasUnit(e.currentSystem(), unit) && !hasUnit(newPath, unit) {
		return "the new system has no " + unit + " (the agent would be stopped and removed)"
	}
	return ""
}

// hasUnit reports whether the system toplevel has a unit file named unit.
func hasUnit(toplevel, unit string) bool {
	if toplevel == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(toplevel, "etc/systemd/system", unit))
	return err == nil
}

// switchLockHeld reports whether another process holds
// switch-to-configuration's lock, by taking it without blocking and letting
// it go at once.
func switchLockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// checkUnit is the name of the deployment's switch inhibitors check unit.
func (e *Engine) checkUnit(id string) string {
	return e.opts.UnitPrefix + "check-" + id
}

// checkInhibitors runs the new system's "switch-to-configuration check"
// where it has one; a refusal makes the system not activatable live. It
// fails only when ctx ends (the controller went away: no switch follows).
func (d *deployment) checkInhibitors(ctx context.Context, newPath string, sum *Summary) error {
	if sum.NotActivatable != "" {
		return nil
	}
	var out []string
	err := d.runSTC(ctx, newPath, "check", func(l string) { out = append(out, l) })
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("switch-to-configuration check: %w", ctx.Err())
	}
	code, ok := exitCodeOf(err)
	switch {
	case ok && code == stcFailed && usageOnly(out):
		// An older switch-to-configuration without "check".
	case ok && code == stcFailed:
		reason := "its switch inhibitors refused a live switch"
		if why := refusal(out); why != "" {
			reason += ": " + why
		}
		sum.NotActivatable = reason
	case ok && code == stcLocked:
		d.emit(Event{Kind: EventWarning, Line: "could not run the switch inhibitors: " + ErrSwitchLocked.Error()})
	default:
		d.emit(Event{Kind: EventWarning, Line: "could not run the switch inhibitors: " + err.Error()})
	}
	return nil
}

// usageOnly reports whether out is switch-to-configuration's usage text (it
// does not know the action).
func usageOnly(out []string) bool {
	for _, l := range out {
		if strings.HasPrefix(strings.TrimSpace(l), "Usage:") || strings.Contains(l, "invalid action") {
			return true
		}
	}
	return false
}

// refusal joins what the checks printed, without s-t-c's own last word.
func refusal(out []string) string {
	var keep []string
	for _, l := range out {
		if l = strings.TrimSpace(l); l != "" && l != "Pre-switch checks failed" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// judgeSwitchExit decides what a live switch's exit code means. It returns
// true when the deployment goes on to the health check.
func (d *deployment) judgeSwitchExit(ctx context.Context, code int) bool {
	rec := d.rec
	switch code {
	case stcOK:
		return true
	case stcUnitsFailed:
		// switch-to-configuration counts every failed unit, also those
		// that failed before the switch: systemd's list, judged against the
		// baseline, decides (with the critical units) in the health check.
		d.emit(Event{Kind: EventWarning, Line: "switch-to-configuration reports failed units; judging them against the units failed before the switch"})
		return true
	case stcRebootRequired:
		rec.NotActivated = "switch-to-configuration exited 100: the new system's init is incompatible with the running one"
		if rec.ProfileDeferred {
			// "test" activated nothing and left the boot default alone:
			// make the new system the boot default, as "switch" would have.
			if err := d.moveBootDefault(ctx); err != nil {
				d.restoreBootDefault(ctx, rec.NotActivated+"; making it the boot default failed: "+err.Error())
				return false
			}
		}
		d.finishRebootRequired()
		return false
	case stcLocked:
		d.restoreProfileOnly(ctx, fmt.Sprintf("%v: switch-to-configuration exited %d (%s); nothing was activated", ErrSwitchLocked, code, exitMeaning(code)))
		return false
	}
	d.rollback(ctx, fmt.Sprintf("switch-to-configuration exited %d: %s", code, exitMeaning(code)))
	return false
}

// finishRebootRequired ends a switch that only set the boot default.
func (d *deployment) finishRebootRequired() {
	rec := d.rec
	rec.RebootRequired = []string{"system"}
	d.finish(journal.StateRebootRequired, fmt.Sprintf("%s is the boot default (generation %d) but was not activated (%s): reboot the host to run it",
		rec.NewPath, rec.NewGeneration, rec.NotActivated))
}

// restoreProfileOnly undoes a switch that activated nothing: the system
// profile goes back to the previous system; nothing else changed.
func (d *deployment) restoreProfileOnly(ctx context.Context, reason string) {
	e := d.e
	rec := d.rec
	if rec.ProfileDeferred {
		// test-then-boot: the profile was never moved.
		rec.Phase = string(PhaseSwitch)
		d.finish(journal.StateFailed, reason+"; the system profile and the boot default did not change")
		return
	}
	if rec.PreviousPath != "" {
		err := e.nix.SetProfile(ctx, e.opts.Profile, rec.PreviousProfile())
		if err == nil {
			if g := e.currentGenNumber(ctx); g != 0 {
				rec.RollbackGeneration = g
			}
			rec.Phase = string(PhaseSwitch)
			d.finish(journal.StateFailed, reason+"; the system profile is restored to "+rec.PreviousProfile())
			return
		}
		reason += "; restoring the system profile failed: " + err.Error()
	}
	rec.RecoveryCommands = recoveryCommands(e.opts.Profile, rec.PreviousProfile(), rec.PreviousPath)
	d.finish(journal.StateManual, reason)
}

// judgeFailedUnits reports the units that had failed before the switch and
// are failed after it; they do not count against the deployment.
func (d *deployment) judgeFailedUnits(v HealthVerdict) {
	if len(v.PreviouslyFailed) == 0 {
		return
	}
	d.rec.PreviouslyFailed = v.PreviouslyFailed
	d.emit(Event{Kind: EventWarning, Line: "failed before the switch already (not held against this deployment): " + strings.Join(v.PreviouslyFailed, ", ")})
}

// judgeBootExit decides what a "boot" switch's exit code means.
func (d *deployment) judgeBootExit(ctx context.Context, code int) {
	rec := d.rec
	switch {
	case code == stcLocked:
		d.restoreProfileOnly(ctx, fmt.Sprintf("%v: switch-to-configuration boot exited %d (%s); the boot default did not change", ErrSwitchLocked, code, exitMeaning(code)))
	case code != stcOK:
		d.restoreBootDefault(ctx, fmt.Sprintf("switch-to-configuration boot exited %d: %s", code, exitMeaning(code)))
	case rec.NotActivated != "":
		d.finishRebootRequired()
	default:
		d.finish(journal.StateBootScheduled, fmt.Sprintf("%s is the boot default (generation %d); it becomes active at the next boot", rec.NewPath, rec.NewGeneration))
	}
}

// switchMode picks switch-to-configuration's mode for action. A system that
// cannot be activated live is only made the boot default: never a forced
// switch.
func (d *deployment) switchMode(action Action, sum *Summary) string {
	if action == ActionBoot {
		return "boot"
	}
	if sum.NotActivatable != "" {
		d.rec.NotActivated = sum.NotActivatable
		d.emit(Event{Kind: EventWarning, Line: "the new system cannot be activated live (" + sum.NotActivatable + "): making it the boot default; it runs after a reboot"})
		return "boot"
	}
	d.rec.RebootRequired = sum.RebootRequired
	return "switch"
}

// refuseStoppingAgent refuses a configuration that would stop or remove the
// agent's own unit, unless the request forces it.
func (d *deployment) refuseStoppingAgent(sum *Summary, req Request) error {
	if sum.StopsAgent == "" {
		return nil
	}
	if req.Force {
		d.emit(Event{Kind: EventWarning, Line: sum.StopsAgent + "; going on because the request is forced"})
		return nil
	}
	hint := "pass --force to deploy it anyway"
	if req.Action == ActionRollback {
		hint = "roll back to a generation that has the agent, or deploy with --force"
	}
	return fmt.Errorf("%w: %s; after the switch nothing could confirm or roll it back (%s)", ErrStopsAgent, sum.StopsAgent, hint)
}

// dryActivatedMessage is the result line of a dry-activate request.
func dryActivatedMessage(sum *Summary) string {
	msg := "dry-activated " + sum.NewPath + "; nothing changed"
	if sum.NotActivatable != "" {
		msg += "; it cannot be activated live (" + sum.NotActivatable + "): a deploy only makes it the boot default (as --boot does) and it runs after a reboot"
	} else if len(sum.RebootRequired) > 0 {
		msg += "; reboot required for the new " + strings.Join(sum.RebootRequired, ", ")
	}
	if sum.StopsAgent != "" {
		msg += "; " + sum.StopsAgent + " (a deploy needs --force)"
	}
	return msg
}

// summaryNotes is what the summary's log line adds besides units: what
// needs a reboot, what cannot be activated, what would stop the agent.
func summaryNotes(s *Summary) string {
	var b strings.Builder
	if len(s.RebootRequired) > 0 {
		b.WriteString("; reboot required: " + strings.Join(s.RebootRequired, ", "))
	}
	if s.NotActivatable != "" {
		b.WriteString("; not activatable live: " + s.NotActivatable)
	}
	if s.StopsAgent != "" {
		b.WriteString("; " + s.StopsAgent)
	}
	return b.String()
}
