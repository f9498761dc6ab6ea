package activation

import (
	"context"
	"fmt"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/pantheros/panther/agent/deploy"
)

// The independent dead-man (see agent/deploy/deadman.go): a transient
// timer <unit>.timer and its transient service <unit>.service, created
// together in one StartTransientUnit call (the service as an auxiliary
// unit, as systemd-run --on-active does). The timer counts on the
// monotonic clock (OnActiveSec) with a 1 ms accuracy (systemd's default
// is one minute) and stays loaded once elapsed (RemainAfterElapse), so
// that whether it fired can be read; the service is the switch unit the
// spec describes, started at most once by the timer.

var _ deploy.Deadman = (*Activation)(nil)

// monotonicTimer is one element of a timer's TimersMonotonic, a(st).
type monotonicTimer struct {
	Base string
	USec uint64
}

// deadmanAccuracy is the timer's AccuracySec.
const deadmanAccuracy = time.Millisecond

// TimerProperties are the dead-man timer's settings, in the order sent.
func (a *Activation) TimerProperties(u deploy.UnitSpec, after time.Duration) []sdbus.Property {
	return []sdbus.Property{
		sdbus.PropDescription("panther: independent dead-man, restores " + u.Toplevel + " unless confirmed"),
		{Name: "TimersMonotonic", Value: godbus.MakeVariant([]monotonicTimer{{Base: "OnActiveSec", USec: uint64(after / time.Microsecond)}})},
		{Name: "AccuracyUSec", Value: godbus.MakeVariant(uint64(deadmanAccuracy / time.Microsecond))},
		{Name: "RemainAfterElapse", Value: godbus.MakeVariant(true)},
	}
}

// ArmDeadman implements deploy.Deadman.
func (a *Activation) ArmDeadman(ctx context.Context, u deploy.UnitSpec, after time.Duration) error {
	if u.Unit == "" || u.Toplevel == "" || u.Output == "" || u.Mode != "switch" {
		return fmt.Errorf("arming a dead-man: unit name, toplevel, output and mode switch are required")
	}
	if after <= 0 {
		after = time.Microsecond
	}
	// Re-arming: stop the old timer; a pair that fired is left alone.
	fired, err := a.HoldDeadman(ctx, u.Unit)
	if err != nil {
		return err
	}
	st, err := a.UnitStatus(ctx, u.Unit)
	if err != nil {
		return err
	}
	if fired || st.State != deploy.UnitGone {
		return fmt.Errorf("arming %s: %w", timerName(u.Unit), deploy.ErrDeadmanFired)
	}
	if err := a.ClearUnit(ctx, u.Unit); err != nil { // a loaded, never started service
		return err
	}
	timer, service := timerName(u.Unit), serviceName(u.Unit)
	sprops := append([]sdbus.Property{sdbus.PropDescription("panther: independent dead-man: switch-to-configuration switch " + u.Toplevel)}, a.properties(u, false)...)
	aux := []sdbus.PropertyCollection{{Name: service, Properties: sprops}}
	tprops := a.TimerProperties(u, after)
	a.log.Info("arming the dead-man", "timer", timer, "service", service, "after", after, "toplevel", u.Toplevel)
	// A pair just stopped may still be loaded until systemd collects it.
	retryUntil := time.Now().Add(5 * time.Second)
	for {
		ch := make(chan string, 1)
		err := a.call(ctx, func(c Systemd) error {
			_, err := c.StartTransientUnitAux(ctx, timer, "fail", tprops, aux, ch)
			return err
		})
		if errorName(err) == "org.freedesktop.systemd1.UnitExists" && time.Now().Before(retryUntil) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("starting %s over D-Bus: %w", timer, err)
		}
		select {
		case res := <-ch:
			if res != "done" {
				return fmt.Errorf("starting %s: start job %s", timer, res)
			}
		case <-time.After(jobWait):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
}

// HoldDeadman implements deploy.Deadman: it stops the timer and reports
// whether the timer had fired (elapsed, or triggered at all).
func (a *Activation) HoldDeadman(ctx context.Context, unit string) (bool, error) {
	timer := timerName(unit)
	var up, tp map[string]any
	err := a.call(ctx, func(c Systemd) error {
		var err error
		if up, err = c.GetUnitPropertiesContext(ctx, timer); err != nil {
			return err
		}
		if str(up, "LoadState") != "loaded" {
			return nil
		}
		tp, err = c.GetUnitTypePropertiesContext(ctx, timer, "Timer")
		return err
	})
	if err != nil && errorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
		return false, fmt.Errorf("reading %s over D-Bus: %w", timer, err)
	}
	fired := str(up, "SubState") == "elapsed" || str(up, "SubState") == "running" || num(tp, "LastTriggerUSec") != 0
	if err := a.stop(ctx, timer); err != nil {
		return fired, err
	}
	return fired, nil
}

// StartDeadman implements deploy.Deadman: start the loaded service (or
// join its start), else create it from u.
func (a *Activation) StartDeadman(ctx context.Context, u deploy.UnitSpec) error {
	name := serviceName(u.Unit)
	ch := make(chan string, 1)
	err := a.call(ctx, func(c Systemd) error {
		_, err := c.StartUnitContext(ctx, name, "replace", ch)
		return err
	})
	switch {
	case errorName(err) == "org.freedesktop.systemd1.NoSuchUnit" || errorName(err) == "org.freedesktop.systemd1.LoadFailed":
		// Collected with its timer: the same service, created anew.
		return a.StartUnit(ctx, u)
	case err != nil:
		return fmt.Errorf("starting %s over D-Bus: %w", name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("starting %s: start job %s", name, res)
		}
	case <-time.After(jobWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// ClearDeadman implements deploy.Deadman.
func (a *Activation) ClearDeadman(ctx context.Context, unit string) error {
	if err := a.stop(ctx, timerName(unit)); err != nil {
		return err
	}
	return a.ClearUnit(ctx, unit)
}

// stop stops a unit and drops a failed record of it; a unit systemd does
// not know is no error.
func (a *Activation) stop(ctx context.Context, name string) error {
	ch := make(chan string, 1)
	err := a.call(ctx, func(c Systemd) error {
		_, err := c.StopUnitContext(ctx, name, "replace", ch)
		return err
	})
	switch {
	case errorName(err) == "org.freedesktop.systemd1.NoSuchUnit":
		return nil
	case err != nil:
		return fmt.Errorf("stopping %s over D-Bus: %w", name, err)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	err = a.call(ctx, func(c Systemd) error { return c.ResetFailedUnitContext(ctx, name) })
	if err != nil && errorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
		return fmt.Errorf("resetting %s over D-Bus: %w", name, err)
	}
	return nil
}

// timerName is the timer of a dead-man pair.
func timerName(unit string) string { return unit + ".timer" }
