package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/pantheros/panther/agent/journal"
)

// Test, then boot (issue 11, item 1). A live deploy activates the new
// system with switch-to-configuration test, which leaves the boot loader
// alone, and leaves the system profile on the previous system: in the
// confirmation window the boot default is the previous system, so a
// reboot, a hang or a kernel panic brings the previous system back by
// itself, whatever the agent does. The confirm moves the profile to the new
// system (its generation is created then) and runs the new system's
// switch-to-configuration boot in a transient unit (with
// NIXOS_INSTALL_BOOTLOADER when the deploy asked for it).
//
// A confirm whose boot step fails is still a confirm: the new system runs
// and was proven, and a confirmed system is never rolled back. The record
// says so (BootPending, BootError, and the result's message), the boot
// default stays on the previous system, the new system stays rooted against
// garbage collection, and the agent tries the boot step again at its next
// start until it succeeds.
//
// A record written by an agent before this change (ProfileDeferred unset)
// moved the profile before its switch; its rollback still sets the profile
// back (restoreProfile).

// stcMode is switch-to-configuration's mode for a deployment's mode: a live
// switch runs "test", "boot" stays "boot".
func stcMode(mode string) string {
	if mode == "switch" {
		return "test"
	}
	return mode
}

// bootUnit is the name of the unit running the confirm's boot step.
func (e *Engine) bootUnit(id string) string {
	return e.opts.UnitPrefix + "boot-" + id
}

// moveBootDefault makes the new system the system profile and the boot
// default: nix-env --set, then its switch-to-configuration boot.
func (d *deployment) moveBootDefault(ctx context.Context) error {
	e, rec := d.e, d.rec
	if err := e.nix.SetProfile(ctx, e.opts.Profile, rec.NewProfile()); err != nil {
		return fmt.Errorf("setting the system profile to %s: %w", rec.NewProfile(), err)
	}
	if g := e.currentGenNumber(ctx); g != 0 {
		rec.NewGeneration = g
	}
	unit := e.bootUnit(rec.ID)
	d.clearUnit(ctx, unit) // left by an earlier try
	if err := e.act.StartUnit(ctx, d.unitSpec(unit, rec.NewPath, "boot")); err != nil {
		return fmt.Errorf("starting %s: %w", unit, err)
	}
	st, err := d.waitUnit(ctx, unit, e.j.LogPath(rec.ID), false, PhaseConfirm, nil)
	if err != nil {
		return err
	}
	defer d.clearUnit(ctx, unit)
	what := rec.NewPath + "/bin/switch-to-configuration boot"
	code, err := d.exitOf(st, what, unit)
	if err != nil {
		return err
	}
	if code != stcOK {
		return fmt.Errorf("%s exited %d: %s", what, code, exitMeaning(code))
	}
	return nil
}

// bootConfirmed runs the confirm's boot step of a confirmed record and
// records its outcome.
func (d *deployment) bootConfirmed(ctx context.Context) {
	e, rec := d.e, d.rec
	err := d.moveBootDefault(ctx)
	if err != nil {
		rec.BootError = err.Error()
		d.e.appendLog(rec.ID, "[confirm] the boot default is still the previous system: "+err.Error()+"; the agent tries again at its next start")
		e.log.Error("confirmed, but the boot step failed", "deployment", rec.ID, "error", err)
	} else {
		if i := strings.Index(rec.Reason, bootPendingPrefix); i >= 0 {
			rec.Reason = rec.Reason[:i] + "; the boot default was moved at a later try"
		}
		rec.BootPending, rec.BootError = false, ""
		d.e.appendLog(rec.ID, fmt.Sprintf("[confirm] %s is the system profile (generation %d) and the boot default", rec.NewPath, rec.NewGeneration))
	}
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
	}
	if !rec.BootPending {
		e.dropRoots(rec.ID)
	}
}

// bootPendingPrefix starts what a confirm's result says when its boot step
// failed.
const bootPendingPrefix = "; but the boot default is still the previous system"

// bootPendingNote is what a confirm's result says when its boot step failed.
func bootPendingNote(rec *journal.Record) string {
	if !rec.BootPending {
		return ""
	}
	return bootPendingPrefix + " (" + rec.BootError + "): the new system runs, and the agent tries the boot step again at its next start"
}

// retryBoot runs the boot step of confirmed records whose boot step has
// not succeeded (called at start).
func (e *Engine) retryBoot() {
	recs, err := e.j.List()
	if err != nil {
		return
	}
	for _, rec := range recs {
		if rec.State != journal.StateConfirmed || !rec.BootPending {
			continue
		}
		d := e.newDeployment(rec, newRun(rec.ID))
		e.log.Info("confirmed deployment: trying its boot step again", "deployment", rec.ID)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			d.bootConfirmed(e.ctx)
		}()
	}
}

// confirmHold stops the dead-man's timer before a confirm and reports
// whether its rollback has started already (the confirm is then too late).
func (e *Engine) confirmHold(rec *journal.Record) (started bool, err error) {
	dm := e.deadman()
	if dm == nil || rec.DeadmanUnit == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(e.ctx, clearTimeout)
	defer cancel()
	fired, err := dm.HoldDeadman(ctx, rec.DeadmanUnit)
	if err != nil {
		return false, err
	}
	st, err := e.act.UnitStatus(ctx, rec.DeadmanUnit)
	if err != nil {
		return false, err
	}
	return fired || st.State != UnitGone, nil
}

// followDeadman finishes a record whose dead-man rollback started before a
// confirm could stop it.
func (e *Engine) followDeadman(rec *journal.Record) {
	e.mu.Lock()
	r := e.runs[rec.ID]
	if r == nil {
		r = newRun(rec.ID)
		e.runs[rec.ID] = r
	}
	e.mu.Unlock()
	d := e.newDeployment(rec, r)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		d.rollback(e.ctx, fmt.Sprintf("not confirmed within %v: the independent dead-man's rollback started before the confirm", rec.ConfirmTimeout))
	}()
}

// bootedPrevious reports whether the host rebooted in the window of a
// test-then-boot deployment and runs the previous system: its boot default
// brought it back, so a rollback has nothing to switch.
func (d *deployment) bootedPrevious() bool {
	rec := d.rec
	rebooted := rec.BootToken != "" && rec.BootToken != d.e.bootToken
	return rebooted && rec.ProfileDeferred && rec.PreviousPath != "" && d.e.currentSystem() == rec.PreviousPath
}
