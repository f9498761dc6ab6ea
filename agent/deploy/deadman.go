package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The independent dead-man (issue 11, item 2). Before a live switch the
// agent arms a transient systemd timer, <UnitPrefix>deadman-<id>.timer,
// whose service <UnitPrefix>deadman-<id>.service runs the previous
// system's switch-to-configuration switch (its absolute store path: a
// transient unit on NixOS has only systemd's tools on PATH) with its output
// appended to the deployment log. It is systemd's, not the agent's: an
// agent that is stopped, masked, SIGKILLed or crash-looping in the window
// still gets its host rolled back at the deadline.
//
// The timer counts on the monotonic clock (OnActiveSec), like the agent's
// own time.AfterFunc: a wall clock stepped by the new system's time sync
// must neither fire it early nor hold it back, and a reboot drops it anyway
// (the boot default is then the previous system, see testboot.go). Armed
// before the switch, it fires SwitchTimeout + the window after the switch
// starts (the switch unit is stopped by SwitchTimeout, so switch-to-
// configuration's lock is free by then); it is re-armed to the window when
// the switch ends and again when the health check passes, as the agent's
// deadline is.
//
// Every rollback of the window (the agent's deadline, a failed health
// check, a failed switch) runs in that same service unit: whoever starts it
// first runs it, the other joins it (starting an active unit is a no-op),
// so exactly one rollback runs. The agent stops the timer before it starts
// the service and records who ran the rollback (journal RolledBackBy):
// "agent" is written before the agent starts it, "deadman" when the agent
// finds it started already. The confirm stops the timer first and is
// refused when the service has started: too late.

// deadmanUnit is the name (without suffix) of the dead-man pair of id.
func (e *Engine) deadmanUnit(id string) string {
	return e.opts.UnitPrefix + "deadman-" + id
}

// deadman returns the Activator's dead-man, nil when it has none.
func (e *Engine) deadman() Deadman {
	dm, _ := e.act.(Deadman)
	return dm
}

// deadmanSpec is the dead-man service: prev's switch-to-configuration
// switch, with the environment and deadline of every switch unit.
func (d *deployment) deadmanSpec() UnitSpec {
	return d.unitSpec(d.rec.DeadmanUnit, d.rec.PreviousPath, "switch")
}

// armDeadman (re)arms the dead-man to fire after the given time. Arming
// before the switch (first) must succeed, or the deploy stops with nothing
// changed; a failed re-arm is a warning (the previous timer, or the
// agent's own, still stands).
func (d *deployment) armDeadman(ctx context.Context, after time.Duration, first bool) error {
	dm, rec := d.e.deadman(), d.rec
	if dm == nil || rec.DeadmanUnit == "" {
		return nil
	}
	if err := dm.ArmDeadman(ctx, d.deadmanSpec(), after); err != nil {
		if errors.Is(err, ErrDeadmanFired) {
			return err
		}
		if first {
			return fmt.Errorf("arming the independent dead-man %s.timer: %w", rec.DeadmanUnit, err)
		}
		d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("could not re-arm the independent dead-man %s.timer: %v", rec.DeadmanUnit, err)})
		return nil
	}
	d.logf(PhaseConfirm, "independent dead-man %s.timer armed: it restores %s in %v unless confirmed", rec.DeadmanUnit, rec.PreviousPath, after.Round(time.Millisecond))
	return nil
}

// deadmanRollback runs the rollback in the dead-man's service: it stops the
// timer, starts the service unless the timer did, records who ran it and
// returns the service's exit code.
func (d *deployment) deadmanRollback(ctx context.Context) (int, error) {
	e, rec := d.e, d.rec
	dm, unit := e.deadman(), rec.DeadmanUnit
	fired, err := dm.HoldDeadman(ctx, unit)
	if err != nil {
		d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("could not stop the dead-man's timer %s.timer (its service is started all the same; exactly one runs): %v", unit, err)})
	}
	st, err := e.act.UnitStatus(ctx, unit)
	if err != nil {
		return -1, fmt.Errorf("reading %s: %w", unit, err)
	}
	if rec.RolledBackBy == "" {
		rec.RolledBackBy = RolledBackByAgent
		if fired || st.State != UnitGone {
			rec.RolledBackBy = RolledBackByDeadman
		}
		if err := e.j.Update(rec); err != nil {
			e.log.Error("journal update", "deployment", rec.ID, "error", err)
		}
	}
	switch {
	case st.State != UnitGone && rec.RolledBackBy == RolledBackByDeadman:
		d.logf(PhaseRollback, "the independent dead-man %s.timer started the rollback at the deadline", unit)
	case st.State == UnitGone:
		d.logf(PhaseRollback, "starting the rollback in %s.service", unit)
		if err := dm.StartDeadman(ctx, d.deadmanSpec()); err != nil {
			return -1, fmt.Errorf("starting %s: %w", unit, err)
		}
	}
	if st, err = d.waitUnit(ctx, unit, e.j.LogPath(rec.ID), false, PhaseRollback, nil); err != nil {
		return -1, err
	}
	return d.exitOf(st, "the previous system's switch-to-configuration switch", unit)
}

// clearDeadman drops the dead-man pair once the record's outcome is written.
func (d *deployment) clearDeadman(ctx context.Context) {
	dm, rec := d.e.deadman(), d.rec
	if dm == nil || rec.DeadmanUnit == "" {
		return
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), clearTimeout)
		defer cancel()
	}
	if err := dm.ClearDeadman(ctx, rec.DeadmanUnit); err != nil {
		d.e.log.Warn("clearing the dead-man", "deployment", rec.ID, "unit", rec.DeadmanUnit, "error", err)
	}
}

// Who ran a rollback (journal.Record.RolledBackBy).
const (
	RolledBackByAgent   = "agent"
	RolledBackByDeadman = "deadman"
	RolledBackByReboot  = "reboot"
)

// rolledBackNote is what the result line adds about who rolled back.
func rolledBackNote(by string) string {
	switch by {
	case RolledBackByDeadman:
		return " (rolled back by the independent dead-man)"
	case RolledBackByReboot:
		return " (the host booted the previous system, its boot default: nothing had to be switched)"
	}
	return ""
}

// rearmDeadman re-arms the dead-man to fire after the given time. It
// reports false when the dead-man has fired already: the deployment then
// rolls back, following the dead-man's run.
func (d *deployment) rearmDeadman(ctx context.Context, after time.Duration) bool {
	if d.deadmanStarted(ctx) {
		return false
	}
	if err := d.armDeadman(ctx, after, false); errors.Is(err, ErrDeadmanFired) {
		d.rollback(ctx, fmt.Sprintf("not confirmed within %v: the independent dead-man's deadline passed", d.rec.ConfirmTimeout))
		return false
	}
	return true
}

// deadmanStarted reports whether the dead-man's service has started (its
// timer fired while the agent was down, stuck or late) and if so rolls
// back, following that service: the window is over, nothing may re-arm it.
func (d *deployment) deadmanStarted(ctx context.Context) bool {
	e, rec := d.e, d.rec
	if e.deadman() == nil || rec.DeadmanUnit == "" {
		return false
	}
	st, err := e.act.UnitStatus(ctx, rec.DeadmanUnit)
	if err != nil || st.State == UnitGone {
		return false
	}
	d.rollback(ctx, fmt.Sprintf("not confirmed within %v: the independent dead-man's deadline passed", rec.ConfirmTimeout))
	return true
}
