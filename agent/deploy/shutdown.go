package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// A clean shutdown or reboot of the host is not a failure.
//
// While the host goes down (an operator's `systemctl reboot`, an activation
// that reboots, a watchdog), systemd stops every unit: the switch unit ends
// without an exit code, the health check sees the system "stopping" and
// units deactivating, and systemd refuses to start a rollback unit ("the
// transaction is destructive"). None of that says the new system is
// broken. So before the engine judges anything destructive — a rollback for
// whatever reason (the switch unit gone, a failed health check, the
// dead-man's deadline), a failed rollback (manual), a failed step before
// the switch — it asks the host (Deps.Host) whether it is shutting down. If
// it is, the engine records "interrupted by reboot during <phase>" in the
// journal record (Record.Interrupted, a non-final state), logs it, changes
// nothing and waits to be stopped. Should the shutdown be cancelled, it
// goes on judging as before.
//
// After the boot, resumeAfterShutdown decides from the system that runs:
//   - the previous system runs (/run/current-system is the record's
//     previous path; the boot default was never moved, or the rollback's
//     switch had moved it back): the deployment ends rolled back, "the host
//     rebooted during <phase>; the previous system is running", without a
//     rollback switch (the system profile is set back if it still holds the
//     new system);
//   - the new system runs unconfirmed: it is rolled back, as before.
//
// manual stays for a rollback that really failed on a running system.

// shutdownPoll is how often an interrupted deployment asks whether the
// shutdown is still under way while it waits to be stopped.
const shutdownPoll = 500 * time.Millisecond

// shutdownAsk bounds one question to systemd.
const shutdownAsk = 5 * time.Second

// hostGoingDown asks the host whether it is shutting down. Without a Host,
// or when systemd cannot be asked, the answer is no: the engine judges as
// it always did.
func (d *deployment) hostGoingDown(ctx context.Context) bool {
	e := d.e
	if e.host == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownAsk)
	defer cancel()
	down, err := e.host.ShuttingDown(ctx)
	if err != nil {
		e.log.Warn("could not ask systemd whether the host is shutting down", "deployment", d.rec.ID, "error", err)
		return false
	}
	return down
}

// interruptedByShutdown is asked before a destructive decision; what says
// which ("would roll back: <reason>"). When the host is going down it
// records the interruption, does nothing and waits until ctx ends (the
// agent is being stopped), then returns true: the caller returns and leaves
// the record as it is for the next start. It returns false when the host is
// not going down, or the shutdown was cancelled: the caller decides.
func (d *deployment) interruptedByShutdown(ctx context.Context, what string) bool {
	if !d.hostGoingDown(ctx) {
		return false
	}
	e, rec := d.e, d.rec
	phase := rec.Phase
	if phase == "" {
		phase = string(PhaseSwitch)
	}
	rec.Interrupted = "interrupted by reboot during " + phase
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
	}
	d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("%s: the host is shutting down (%s); nothing is undone now, the agent decides after the boot", rec.Interrupted, what)})
	e.log.Warn("the host is shutting down: deployment interrupted, waiting to be stopped", "deployment", rec.ID, "state", rec.State, "phase", phase, "instead_of", what)
	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-tick.C:
		}
		if !d.hostGoingDown(ctx) {
			break
		}
	}
	rec.Interrupted = ""
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
	}
	d.logf(Phase(phase), "the shutdown was cancelled: going on (%s)", what)
	return false
}

// resumeAfterShutdown decides a deployment the host's reboot interrupted,
// at the agent's start, and reports whether it did; if not, resume goes on
// as before. rebooted: the record's boot token is not this boot's.
func (d *deployment) resumeAfterShutdown(ctx context.Context, rebooted bool) bool {
	e, rec := d.e, d.rec
	phase := rec.Phase
	switch rec.State {
	case journal.StateRunning:
		if rec.Interrupted == "" {
			return false
		}
		d.clearUnit(ctx, e.dryActivateUnit(rec.ID))
		d.clearUnit(ctx, e.checkUnit(rec.ID))
		d.fail(phase, fmt.Sprintf("the host rebooted during %s; nothing was changed", phase))
		return true
	case journal.StateSwitching, journal.StateAwaiting, journal.StateRollingBack:
	default:
		return false
	}
	if !rebooted {
		return false
	}
	cur := e.currentSystem()
	during := rebootedDuring(rec.State, phase)
	if rec.PreviousPath == "" || cur != rec.PreviousPath {
		if rec.State == journal.StateSwitching && phase != string(PhaseSwitch) {
			// The new system (or none known) runs: roll back, saying in
			// which phase the reboot struck (resume says "the switch").
			d.rollback(ctx, "the host "+during+"; the new system was not confirmed")
			return true
		}
		return false
	}
	// The previous system came up: the boot default never left it, or the
	// rollback's switch moved it back. Nothing is left to activate.
	d.logf(PhaseConfirm, "the host %s and booted the previous system %s: nothing to roll back", during, cur)
	e.log.Info("the host rebooted into the previous system", "deployment", rec.ID, "state", rec.State, "phase", phase, "previous", cur)
	if rec.SwitchUnit != "" {
		d.clearUnit(ctx, rec.SwitchUnit)
	}
	d.clearUnit(ctx, d.rollbackUnit())
	if e.profileTarget(ctx) != rec.PreviousProfile() {
		d.restoreProfile(ctx) // an interrupted switch had moved it to the new system
	}
	reason := "the host " + during + "; the previous system is running (it booted the previous system, its boot default: nothing had to be switched)"
	if rec.State == journal.StateRollingBack && rec.Reason != "" {
		reason = rec.Reason + "; " + reason
	}
	rec.Phase = phase
	if rec.RolledBackBy == "" {
		rec.RolledBackBy = RolledBackByReboot
	}
	d.finish(journal.StateRolledBack, d.withProfileNote(reason))
	return true
}

// rebootedDuring says when a reboot struck a deployment in state with
// phase: "rebooted during health", "rebooted before the deployment was
// confirmed", "rebooted during the rollback".
func rebootedDuring(state journal.State, phase string) string {
	switch {
	case state == journal.StateAwaiting:
		return "rebooted before the deployment was confirmed"
	case state == journal.StateRollingBack:
		return "rebooted during the rollback"
	case phase == string(PhaseSwitch) || phase == "":
		return "rebooted during the switch"
	}
	return "rebooted during " + phase
}

// profileTarget is the toplevel the system profile's current generation
// holds ("" if it cannot be read).
func (e *Engine) profileTarget(ctx context.Context) string {
	_, gens := e.currentGeneration(ctx)
	for _, g := range gens {
		if g.Current {
			return g.Path
		}
	}
	return ""
}
