package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// fakeDeadman adds the Deadman port to a fakeActivator: each armed pair's
// timer is a real timer that, like systemd's, starts the service on its
// own, whatever the engine does (also after it closed).
type fakeDeadman struct {
	*fakeActivator
	nix *fakeNix

	mu     sync.Mutex
	arms   []time.Duration        // every ArmDeadman's delay, in order
	timers map[string]*time.Timer // armed, not held
	fired  map[string]bool
	specs  map[string]UnitSpec
	// profileAtHold is how many times the profile had been set when the
	// timer was held (-1: never held).
	profileAtHold int
}

func withDeadman(h *harness) *fakeDeadman {
	dm := &fakeDeadman{fakeActivator: h.act, nix: h.nix, timers: map[string]*time.Timer{}, fired: map[string]bool{}, specs: map[string]UnitSpec{}, profileAtHold: -1}
	h.dm = dm
	h.t.Cleanup(func() {
		dm.mu.Lock()
		defer dm.mu.Unlock()
		for _, t := range dm.timers {
			t.Stop()
		}
	})
	return dm
}

func (f *fakeDeadman) ArmDeadman(ctx context.Context, spec UnitSpec, after time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fired[spec.Unit] {
		return ErrDeadmanFired
	}
	if t := f.timers[spec.Unit]; t != nil {
		t.Stop()
	}
	f.arms = append(f.arms, after)
	f.specs[spec.Unit] = spec
	f.timers[spec.Unit] = time.AfterFunc(after, func() { f.fire(spec.Unit) })
	return nil
}

// fire is the timer elapsing: it starts the service unless held.
func (f *fakeDeadman) fire(unit string) {
	f.mu.Lock()
	if f.timers[unit] == nil {
		f.mu.Unlock()
		return
	}
	delete(f.timers, unit)
	f.fired[unit] = true
	spec := f.specs[unit]
	f.mu.Unlock()
	f.StartDeadman(context.Background(), spec)
}

func (f *fakeDeadman) HoldDeadman(ctx context.Context, unit string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.timers[unit]; t != nil {
		t.Stop()
		delete(f.timers, unit)
	}
	f.profileAtHold = len(f.nix.callsWith("set-profile"))
	return f.fired[unit], nil
}

func (f *fakeDeadman) StartDeadman(ctx context.Context, spec UnitSpec) error {
	if f.loaded(spec.Unit) {
		return nil // joins the run
	}
	return f.StartUnit(ctx, spec)
}

func (f *fakeDeadman) ClearDeadman(ctx context.Context, unit string) error {
	f.mu.Lock()
	if t := f.timers[unit]; t != nil {
		t.Stop()
		delete(f.timers, unit)
	}
	f.mu.Unlock()
	return f.ClearUnit(ctx, unit)
}

func (f *fakeDeadman) armed(unit string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timers[unit] != nil
}

func newDeadmanHarness(t *testing.T) (*harness, *fakeDeadman) {
	t.Helper()
	h := newBareHarness(t)
	h.nix.seed(h.old)
	h.link(h.old)
	dm := withDeadman(h)
	h.start()
	return h, dm
}

// TestTestThenBootOrder: in the window the new system runs by
// switch-to-configuration test, the profile (the boot default) is
// untouched and the dead-man is armed; the confirm stops the dead-man
// first, then moves the profile and runs the new system's boot.
func TestTestThenBootOrder(t *testing.T) {
	t.Parallel()
	h, dm := newDeadmanHarness(t)
	h.opts.SwitchTimeout = DefaultSwitchTimeout
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	_, aw := h.deployAwaiting(req)
	if h.current() != h.new || aw.NewGeneration != 0 {
		t.Errorf("awaiting: running %s, generation %d; want %s and no generation yet", h.current(), aw.NewGeneration, h.new)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile set before the confirm: %q", got)
	}
	if got, want := h.act.callsWith("start-switch"), []string{"start-switch panther-switch-d1 " + h.new + " test"}; !slices.Equal(got, want) {
		t.Errorf("switches before the confirm %q, want %q", got, want)
	}
	dm.mu.Lock()
	arms := slices.Clone(dm.arms)
	dm.mu.Unlock()
	if len(arms) != 3 || arms[0] != DefaultSwitchTimeout+5*time.Second || arms[1] > 5*time.Second || arms[1] < 4*time.Second || arms[2] > 5*time.Second || arms[2] < 4*time.Second {
		t.Errorf("dead-man armed %v, want switch timeout + 5s before the switch, then 5s at its end and after the health check", arms)
	}
	if rec := h.record("d1"); rec.DeadmanUnit != "panther-deadman-d1" || !rec.ProfileDeferred || !dm.armed("panther-deadman-d1") {
		t.Errorf("record: dead-man %q, profile deferred %v; timer armed %v", rec.DeadmanUnit, rec.ProfileDeferred, dm.armed("panther-deadman-d1"))
	}
	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, res, journal.StateConfirmed, "confirmed by alice")
	if res.Generation != 2 {
		t.Errorf("confirmed generation %d, want 2", res.Generation)
	}
	if dm.profileAtHold != 0 {
		t.Errorf("the dead-man was held after %d profile changes, want before any", dm.profileAtHold)
	}
	if got := h.nix.callsWith("set-profile"); !slices.Equal(got, []string{"set-profile " + h.opts.Profile + " " + h.new}) {
		t.Errorf("profile changes %q", got)
	}
	if got, want := h.act.callsWith("start-switch"), []string{"start-switch panther-switch-d1 " + h.new + " test", "start-switch panther-boot-d1 " + h.new + " boot"}; !slices.Equal(got, want) {
		t.Errorf("switches %q, want %q", got, want)
	}
	if h.act.loaded("panther-deadman-d1") || h.act.loaded("panther-boot-d1") || dm.armed("panther-deadman-d1") {
		t.Error("dead-man or boot unit left after the confirm")
	}
	if rec := h.record("d1"); rec.BootPending || rec.NewGeneration != 2 {
		t.Errorf("record: boot pending %v, generation %d", rec.BootPending, rec.NewGeneration)
	}
}

// TestDeadmanAndAgentRollBackOnce: the agent's deadline and the dead-man's
// timer fire at the same moment; one rollback runs, in the dead-man's
// service.
func TestDeadmanAndAgentRollBackOnce(t *testing.T) {
	t.Parallel()
	for i := range 5 {
		h, _ := newDeadmanHarness(t)
		req := switchReq("d1")
		req.ConfirmTimeout = 100 * time.Millisecond
		w, _ := h.deployAwaiting(req)
		res := w.result()
		wantOutcome(t, res, journal.StateRolledBack, "not confirmed")
		if got := h.act.callsWith("start-switch panther-deadman-d1"); len(got) != 1 {
			t.Errorf("run %d: dead-man service started %d times: %q", i, len(got), got)
		}
		if got := h.act.callsWith("start-switch panther-rollback"); len(got) != 0 {
			t.Errorf("run %d: a second rollback unit ran: %q", i, got)
		}
		rec := h.record("d1")
		if rec.RolledBackBy != RolledBackByAgent && rec.RolledBackBy != RolledBackByDeadman {
			t.Errorf("run %d: rolled back by %q", i, rec.RolledBackBy)
		}
		if h.current() != h.old {
			t.Errorf("run %d: running %s", i, h.current())
		}
		if got := h.nix.callsWith("set-profile"); len(got) != 0 {
			t.Errorf("run %d: profile changes %q", i, got)
		}
	}
}

// TestDeadmanWithoutTheAgent: the agent is down for the whole window; the
// timer alone restores the previous system, and the agent back finishes the
// record: rolled back by the independent dead-man.
func TestDeadmanWithoutTheAgent(t *testing.T) {
	t.Parallel()
	h, _ := newDeadmanHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = 300 * time.Millisecond
	h.deployAwaiting(req)
	h.e.Close() // stopped, and kept down
	h.act.waitStarted(t, "panther-deadman-d1")
	<-h.act.finished(t, "panther-deadman-d1")
	if h.current() != h.old {
		t.Fatalf("after the dead-man the host runs %s", h.current())
	}
	if rec := h.record("d1"); rec.State != journal.StateAwaiting {
		t.Fatalf("record while the agent is down: %s", rec.State)
	}
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "rolled back by the independent dead-man")
	if rec := h.record("d1"); rec.RolledBackBy != RolledBackByDeadman {
		t.Errorf("rolled back by %q", rec.RolledBackBy)
	}
	if got := h.act.callsWith("start-switch panther-deadman-d1"); len(got) != 1 {
		t.Errorf("dead-man service started %q, want once", got)
	}
	if h.act.loaded("panther-deadman-d1") {
		t.Error("the dead-man's service is still loaded once the record is final")
	}
}

// TestConfirmAfterTheDeadmanStartedIsRefused: a confirm that comes once the
// dead-man's rollback has started is too late; the rollback finishes.
func TestConfirmAfterTheDeadmanStartedIsRefused(t *testing.T) {
	t.Parallel()
	h, dm := newDeadmanHarness(t)
	hold := make(chan struct{})
	h.act.script(h.old, switchScript{Hold: hold})
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	w, _ := h.deployAwaiting(req)
	dm.fire("panther-deadman-d1") // e.g. the agent was stuck while the window ran out
	_, err := h.e.Confirm("d1", "alice")
	if !errors.Is(err, ErrDeadlinePassed) || !strings.Contains(err.Error(), "dead-man") {
		t.Fatalf("Confirm = %v, want refused: the dead-man is rolling back", err)
	}
	close(hold)
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "rolled back by the independent dead-man")
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changes %q", got)
	}
	if got := h.act.callsWith("start-switch"); len(got) != 2 {
		t.Errorf("switches %q, want the test and one rollback", got)
	}
}

// TestConfirmWhenTheBootStepFails: the confirm stands (the new system runs
// and is never rolled back once confirmed); the record says the boot
// default is still the previous system; the next start tries again.
func TestConfirmWhenTheBootStepFails(t *testing.T) {
	t.Parallel()
	h, _ := newDeadmanHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	h.deployAwaiting(req)
	h.nix.mu.Lock()
	h.nix.setErr, h.nix.setErrPath = errFake, h.new
	h.nix.mu.Unlock()
	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, res, journal.StateConfirmed, "confirmed by alice", "boot default is still the previous system", errFake.Error(), "next start")
	rec := h.record("d1")
	if !rec.BootPending || !strings.Contains(rec.BootError, errFake.Error()) || h.current() != h.new {
		t.Errorf("record: boot pending %v (%q); running %s", rec.BootPending, rec.BootError, h.current())
	}
	h.nix.mu.Lock()
	h.nix.setErr = nil
	h.nix.mu.Unlock()
	h.restart()
	deadline := time.Now().Add(waitTimeout)
	for h.record("d1").BootPending && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if rec := h.record("d1"); rec.BootPending || rec.State != journal.StateConfirmed || rec.NewGeneration != 2 || strings.Contains(rec.Reason, "still the previous") {
		t.Errorf("after the restart: boot pending %v, state %s, generation %d", rec.BootPending, rec.State, rec.NewGeneration)
	}
	if got := h.act.callsWith("start-switch panther-boot-d1"); len(got) != 1 {
		t.Errorf("boot steps %q, want the retry's", got)
	}
}

// TestRebootInTheWindowBootsThePrevious: the boot default never left the
// previous system, so a reboot in the window brings it back; the agent
// ends the record rolled back without switching anything.
func TestRebootInTheWindowBootsThePrevious(t *testing.T) {
	t.Parallel()
	h, dm := newDeadmanHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	h.deployAwaiting(req)
	h.e.Close()
	h.reboot()
	h.link(h.old)                                      // the boot loader's default
	dm.ClearDeadman(t.Context(), "panther-deadman-d1") // transient units do not survive a reboot
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "rebooted before the deployment was confirmed", "booted the previous system")
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches %q, want only the deploy's test: nothing to roll back", got)
	}
	if rec := h.record("d1"); rec.RolledBackBy != RolledBackByReboot || res.Generation != 1 {
		t.Errorf("rolled back by %q, result generation %d", rec.RolledBackBy, res.Generation)
	}
}

// TestDeadmanFiresDuringTheHealthCheck: a health check that outlasts the
// window lets the dead-man fire; the agent then follows its rollback
// instead of re-arming it, and the record says who rolled back.
func TestDeadmanFiresDuringTheHealthCheck(t *testing.T) {
	t.Parallel()
	h, _ := newDeadmanHarness(t)
	hold := make(chan struct{})
	h.health.mu.Lock()
	h.health.hold = hold
	h.health.mu.Unlock()
	req := switchReq("d1")
	req.ConfirmTimeout = 100 * time.Millisecond
	w := h.submit(req)
	h.act.waitStarted(t, "panther-deadman-d1") // the window from the switch's end ran out
	<-h.act.finished(t, "panther-deadman-d1")
	close(hold)
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "rolled back by the independent dead-man")
	if got := h.act.callsWith("start-switch panther-deadman-d1"); len(got) != 1 {
		t.Errorf("dead-man service started %q, want once", got)
	}
	if h.current() != h.old {
		t.Errorf("running %s", h.current())
	}
}
