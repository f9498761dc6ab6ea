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

// A clean shutdown or reboot of the host is not a failure (shutdown.go):
// while the host goes down the engine judges nothing destructive; after
// the boot it decides from the system that runs.

// fakeHost is the Host port: whether the host is shutting down, scripted.
type fakeHost struct {
	mu    sync.Mutex
	down  bool
	after int // with down: answer "no" to the first after questions
	err   error
	asked int
}

func (f *fakeHost) ShuttingDown(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if f.err != nil {
		return false, f.err
	}
	return f.down && f.asked > f.after, nil
}

func (f *fakeHost) set(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down, f.after, f.asked = down, 0, 0
}

// startWithHost is harness.start with a Host port.
func (h *harness) startWithHost(host Host) *Engine {
	h.t.Helper()
	return h.startWith(func(d *Deps) {
		d.Activator = h.act
		d.Host = host
	})
}

// newShutdownHarness is newHarness whose engine has host as its Host port.
func newShutdownHarness(t *testing.T, host Host) *harness {
	t.Helper()
	h := newBareHarness(t)
	h.nix.seed(h.old)
	h.link(h.old)
	h.startWithHost(host)
	return h
}

// errDestructive is what systemd answers a start job during a shutdown.
var errDestructive = errors.New("Transaction for panther-rollback-d1.service/start is destructive (reboot.target has 'start' job queued, but 'stop' is included in transaction)")

// interrupted waits for the warning that the shutdown interrupted the
// deployment, and checks the record kept it, in a state that is not final.
func interrupted(t *testing.T, h *harness, w *watcher, phase string, state journal.State) {
	t.Helper()
	w.until("the interruption", func(ev Event) bool {
		if ev.Kind == EventResult {
			t.Fatalf("the deployment ended during the shutdown: %s (%s)", ev.Result.Outcome, ev.Result.Message)
		}
		return ev.Kind == EventWarning && strings.HasPrefix(ev.Line, "interrupted by reboot during "+phase)
	})
	rec := h.record("d1")
	if rec.Interrupted != "interrupted by reboot during "+phase || rec.State != state {
		t.Errorf("record: %s, interrupted %q; want %s, interrupted during %s", rec.State, rec.Interrupted, state, phase)
	}
}

// stopAndBoot stops the agent (its ctx ends: it stops waiting), reboots
// the host into system (the link /run/current-system) and starts a new
// agent on a host that is no longer going down.
func stopAndBoot(h *harness, host *fakeHost, system string) {
	h.e.Close()
	h.reboot()
	h.link(system)
	host.set(false)
	h.startWithHost(host)
}

// TestShutdownDuringSwitch: the shutdown stops the switch unit (gone, no
// exit code) and systemd refuses the rollback unit. Before, the engine
// rolled back at once, the rollback unit was refused and the deployment
// ended manual. Now nothing happens until the boot; the previous system
// came up (the boot default never moved), so the deployment ends rolled
// back without a rollback switch, the profile set back.
func TestShutdownDuringSwitch(t *testing.T) {
	t.Parallel()
	host := &fakeHost{}
	h := newShutdownHarness(t, host)
	hold := make(chan struct{})
	h.act.script(h.new, switchScript{Hold: hold, Gone: true})
	w := h.submit(switchReq("d1"))
	w.phaseFinished(PhaseSwitch)
	host.set(true)
	h.act.mu.Lock()
	h.act.startErr = errDestructive
	h.act.mu.Unlock()
	close(hold)
	interrupted(t, h, w, "switch", journal.StateSwitching)
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches during the shutdown: %q, want only the deployment's", got)
	}

	h.act.mu.Lock()
	h.act.startErr = nil
	h.act.mu.Unlock()
	stopAndBoot(h, host, h.old)
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "the host rebooted during the switch; the previous system is running")
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches after the boot: %q, want no rollback switch", got)
	}
	wantProfile(t, h, h.old)
	if rec := h.record("d1"); rec.Phase != string(PhaseSwitch) || rec.Interrupted == "" {
		t.Errorf("record = %+v", *rec)
	}
}

// TestShutdownDuringHealth: the health check sees the system "stopping".
// Nothing is rolled back during the shutdown; the new system boots (the
// switch made it the boot default), unconfirmed: it is rolled back by a
// switch after the boot, the reason naming the health phase.
func TestShutdownDuringHealth(t *testing.T) {
	t.Parallel()
	host := &fakeHost{down: true}
	h := newShutdownHarness(t, host)
	h.health.script(false, "system-state system: stopping", nil)
	w := h.submit(switchReq("d1"))
	interrupted(t, h, w, "health", journal.StateSwitching)
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches during the shutdown: %q, want only the deployment's", got)
	}

	h.health.script(true, "", nil)
	stopAndBoot(h, host, h.new)
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "the host rebooted during health; the new system was not confirmed")
	checkRolledBack(t, h, "d1", res, PhaseHealth)
}

// TestShutdownWhenTheDeadlinePasses: the dead-man's deadline passes while
// the host goes down. It does not roll back then; the host boots the
// previous system (as it does once the boot default stays on it until the
// confirm): the deployment ends rolled back without a switch.
func TestShutdownWhenTheDeadlinePasses(t *testing.T) {
	t.Parallel()
	host := &fakeHost{}
	h := newShutdownHarness(t, host)
	req := switchReq("d1")
	req.ConfirmTimeout = 300 * time.Millisecond
	w, _ := h.deployAwaiting(req)
	host.set(true)
	interrupted(t, h, w, "confirm", journal.StateRollingBack)

	stopAndBoot(h, host, h.old)
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed within", "the host rebooted during the rollback; the previous system is running")
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches: %q, want no rollback switch", got)
	}
	if h.current() != h.old {
		t.Errorf("current system %s, want %s", h.current(), h.old)
	}
}

// TestShutdownRefusesTheRollbackUnit: the health check failed on a running
// host, the rollback began, then the host started going down and systemd
// refused the rollback unit. That is not a failed rollback (manual): after
// the boot, the new system running, the rollback runs again and ends
// rolled back.
func TestShutdownRefusesTheRollbackUnit(t *testing.T) {
	t.Parallel()
	// The first question (before the rollback) says no; the shutdown
	// starts while the rollback unit is being started.
	host := &fakeHost{down: true, after: 1}
	h := newShutdownHarness(t, host)
	h.health.script(false, "critical-unit nginx.service: failed", nil)
	h.act.mu.Lock()
	h.act.startErr = nil
	h.act.mu.Unlock()
	// Only the rollback's start is refused.
	refuse := &refusingActivator{fakeActivator: h.act, unit: "panther-rollback-d1"}
	h.e.Close()
	h.e = nil
	e, err := New(h.opts, Deps{Nix: h.nix, Activator: refuse, Health: h.health, Journal: h.j, Log: testLogger(t), Now: h.clock.now, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	h.e = e
	w := h.submit(switchReq("d1"))
	interrupted(t, h, w, "rollback", journal.StateRollingBack)
	if rec := h.record("d1"); rec.State == journal.StateManual {
		t.Fatalf("manual during the shutdown: %+v", *rec)
	}

	h.health.script(true, "", nil)
	stopAndBoot(h, host, h.new)
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "health check failed: critical-unit nginx.service: failed")
	if h.current() != h.old {
		t.Errorf("current system %s, want %s", h.current(), h.old)
	}
}

// refusingActivator refuses to start one unit, as systemd does during a
// shutdown.
type refusingActivator struct {
	*fakeActivator
	unit string
}

func (a *refusingActivator) StartUnit(ctx context.Context, spec UnitSpec) error {
	if spec.Unit == a.unit {
		return errDestructive
	}
	return a.fakeActivator.StartUnit(ctx, spec)
}

// TestShutdownCancelled: a shutdown cancelled while the engine waited:
// the engine goes on and decides as it would have (rolls back now).
func TestShutdownCancelled(t *testing.T) {
	t.Parallel()
	host := &fakeHost{down: true}
	h := newShutdownHarness(t, host)
	h.health.script(false, "system-state system: stopping", nil)
	w := h.submit(switchReq("d1"))
	interrupted(t, h, w, "health", journal.StateSwitching)
	host.set(false)
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "health check failed")
	if rec := h.record("d1"); rec.Interrupted != "" {
		t.Errorf("record still says %q after the shutdown was cancelled", rec.Interrupted)
	}
	if !slices.ContainsFunc(w.kinds(EventLog), func(ev Event) bool { return strings.Contains(ev.Line, "the shutdown was cancelled") }) {
		t.Error("no log line says the shutdown was cancelled")
	}
}

// TestShutdownBeforeTheSwitch: dry-activate stopped by the shutdown is no
// failure of the new system either: after the boot the deployment fails
// saying the reboot interrupted it and nothing was changed.
func TestShutdownBeforeTheSwitch(t *testing.T) {
	t.Parallel()
	host := &fakeHost{down: true}
	h := newShutdownHarness(t, host)
	h.act.mu.Lock()
	h.act.dryCode = 143
	h.act.mu.Unlock()
	w := h.submit(switchReq("d1"))
	interrupted(t, h, w, "dry-activate", journal.StateRunning)
	stopAndBoot(h, host, h.old)
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateFailed, "the host rebooted during dry-activate; nothing was changed")
	if got := h.act.callsWith("start-switch"); len(got) != 0 {
		t.Errorf("switches: %q, want none", got)
	}
}

// TestShutdownUnknownMeansNo: when systemd cannot be asked, the engine
// judges as it always did (here: a failed rollback on a running host is
// manual).
func TestShutdownUnknownMeansNo(t *testing.T) {
	t.Parallel()
	host := &fakeHost{err: errFake}
	h := newShutdownHarness(t, host)
	h.health.script(false, "critical-unit nginx.service: failed", nil)
	h.act.mu.Lock()
	h.act.startErr = errFake
	h.act.mu.Unlock()
	res := h.submit(switchReq("d1")).result()
	if res.Outcome != journal.StateManual && res.Outcome != journal.StateRolledBack {
		t.Errorf("outcome %s (%s), want the engine's usual verdict", res.Outcome, res.Message)
	}
	if rec := h.record("d1"); rec.Interrupted != "" {
		t.Errorf("interrupted %q without a shutdown", rec.Interrupted)
	}
}

// TestRebootIntoThePreviousSystem: whatever stopped the agent (a power cut
// records nothing), a host that boots the previous system ends the
// deployment rolled back without a rollback switch — what a reboot in the
// window does once the boot default stays on the previous system until
// the confirm. Before, the engine switched to the previous system again.
func TestRebootIntoThePreviousSystem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		until func(h *harness) // brings the deployment to where the power goes
		state journal.State
		msg   string
	}{
		{name: "switching", state: journal.StateSwitching, msg: "the host rebooted during the switch; the previous system is running",
			until: func(h *harness) {
				hold := make(chan struct{})
				h.act.script(h.new, switchScript{Hold: hold})
				w := h.submit(switchReq("d1"))
				w.phaseFinished(PhaseSwitch)
				h.e.Close()
				close(hold)
				<-h.act.finished(t, "panther-switch-d1")
			}},
		{name: "awaiting", state: journal.StateAwaiting, msg: "the host rebooted before the deployment was confirmed; the previous system is running",
			until: func(h *harness) {
				req := switchReq("d1")
				req.ConfirmTimeout = time.Minute
				h.deployAwaiting(req)
				h.e.Close()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := &fakeHost{}
			h := newShutdownHarness(t, host)
			tc.until(h)
			if rec := h.record("d1"); rec.State != tc.state {
				t.Fatalf("record before the power cut: %s", rec.State)
			}
			h.reboot()
			h.link(h.old)
			h.startWithHost(host)
			res := h.watch("d1").result()
			wantOutcome(t, res, journal.StateRolledBack, tc.msg)
			if got := h.act.callsWith("start-switch"); len(got) != 1 {
				t.Errorf("switches: %q, want no rollback switch", got)
			}
			if h.current() != h.old || res.StorePath != h.old {
				t.Errorf("current system %s, result %s: want %s", h.current(), res.StorePath, h.old)
			}
			wantProfile(t, h, h.old)
		})
	}
}

// wantProfile checks that the system profile's current generation holds
// path (however it got there: set back, or never moved).
func wantProfile(t *testing.T, h *harness, path string) {
	t.Helper()
	gens, err := h.nix.Generations(t.Context(), h.opts.Profile)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.Current && g.Path == path {
			return
		}
	}
	t.Errorf("profile generations %+v: want the current one to hold %s", gens, path)
}
