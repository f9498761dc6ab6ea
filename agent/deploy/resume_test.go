package deploy

import (
	"slices"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// The engine's restart (its own switch may restart the agent) and a reboot
// are decided by the journal, systemd's record of the switch unit and the
// boot token.

func TestResumeSwitching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// finishBefore: the unit ended while no agent ran; otherwise it is
		// still running when the new engine starts.
		finishBefore bool
	}{
		{name: "unit ended while no agent ran", finishBefore: true},
		{name: "unit still running", finishBefore: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			hold := make(chan struct{})
			// A unit failed before the switch: the health check after the
			// restart must still know it from the baseline.
			h.health.setFailed("old-broken.service")
			h.act.script(h.new, switchScript{Hold: hold, Code: 4})
			req := switchReq("d1")
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			w.phaseFinished(PhaseSwitch)
			h.e.Close()
			if rec := h.record("d1"); rec.State != journal.StateSwitching || rec.NewGeneration != 0 {
				t.Fatalf("record after the agent stopped mid-switch = %+v", *rec)
			}
			unit := h.act.finished(t, "panther-switch-d1")
			if tc.finishBefore {
				close(hold)
				<-unit
				// systemd keeps the unit's record for the next agent.
				if st, _ := h.act.UnitStatus(t.Context(), "panther-switch-d1"); st.State != UnitExited || st.ExitCode != 4 {
					t.Fatalf("switch unit after it ended = %+v", st)
				}
			}
			h.start()
			w = h.watch("d1")
			if !tc.finishBefore {
				close(hold)
			}
			aw := w.awaiting()
			if aw.NewPath != h.new || aw.NewGeneration != 0 {
				t.Errorf("awaiting = %+v", *aw)
			}
			if got := h.act.callsWith("start-switch"); len(got) != 1 {
				t.Errorf("switches = %q, want the one from before the restart", got)
			}
			_, checks := h.health.calls()
			if len(checks) != 1 || !slices.Equal(checks[0].Baseline, []string{"old-broken.service"}) {
				t.Errorf("health checks after the restart = %+v, want one with the baseline taken before it", checks)
			}
			res, err := h.e.Confirm("d1", "alice")
			if err != nil {
				t.Fatal(err)
			}
			wantOutcome(t, res, journal.StateConfirmed)
			if rec := h.record("d1"); rec.SwitchExitCode == nil || *rec.SwitchExitCode != 4 || rec.PreviousPath != h.old ||
				!slices.Equal(rec.PreviouslyFailed, []string{"old-broken.service"}) {
				t.Errorf("record = %+v", *rec)
			}
			if h.act.loaded("panther-switch-d1") {
				t.Error("the switch unit is still loaded after its exit code was recorded")
			}
		})
	}
}

func TestResumeSwitchingAfterReboot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	hold := make(chan struct{})
	h.act.script(h.new, switchScript{Hold: hold})
	w := h.submit(switchReq("d1"))
	w.phaseFinished(PhaseSwitch)
	h.e.Close()
	close(hold)
	<-h.act.finished(t, "panther-switch-d1")
	h.reboot()
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "rebooted during the switch")
	checkRolledBack(t, h, "d1", res, PhaseSwitch)
}

func TestResumeAwaiting(t *testing.T) {
	t.Parallel()
	const window = 5 * time.Second
	tests := []struct {
		name   string
		before func(h *harness) // between the engines
		// confirm: the window is re-armed and a Confirm keeps the system;
		// otherwise the deployment rolls back with msg.
		confirm bool
		msg     string
	}{
		{name: "deadline ahead, confirmed", before: func(h *harness) {}, confirm: true},
		{
			name:   "deadline ahead, dead-man fires",
			before: func(h *harness) { h.clock.advance(window - 400*time.Millisecond) },
			msg:    "not confirmed within 5s (deadline",
		},
		{
			name:   "deadline passed while down",
			before: func(h *harness) { h.clock.advance(window + time.Second) },
			msg:    "deadline passed while the agent was down",
		},
		{
			name:   "rebooted",
			before: func(h *harness) { h.reboot() },
			msg:    "rebooted before the deployment was confirmed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			req := switchReq("d1")
			req.ConfirmTimeout = window
			_, aw := h.deployAwaiting(req)
			h.e.Close()
			tc.before(h)
			h.start()
			w := h.watch("d1")
			if tc.confirm {
				again := w.awaiting()
				if !again.Deadline.Equal(aw.Deadline) || again.NewGeneration != 0 {
					t.Errorf("re-armed window = %+v, want %+v", *again, *aw)
				}
				if st := h.e.Status(t.Context()); st.Active != "d1" || st.Pending == nil {
					t.Errorf("status = %+v", st)
				}
				res, err := h.e.Confirm("d1", "alice")
				if err != nil {
					t.Fatal(err)
				}
				wantOutcome(t, res, journal.StateConfirmed)
				if h.current() != h.new {
					t.Errorf("current system = %s", h.current())
				}
				return
			}
			res := w.result()
			wantOutcome(t, res, journal.StateRolledBack, tc.msg)
			checkRolledBack(t, h, "d1", res, PhaseConfirm)
		})
	}
}

func TestResumeRunningFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.setGate(make(chan struct{}))
	w := h.submit(switchReq("d1"))
	w.until("the build", func(ev Event) bool { return ev.Kind == EventPhaseStarted && ev.Phase == PhaseBuild })
	h.e.Close()
	if rec := h.record("d1"); rec.State != journal.StateRunning || rec.Phase != string(PhaseBuild) {
		t.Fatalf("record after the agent stopped mid-build = %+v", *rec)
	}
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateFailed, "the agent stopped before the switch", "nothing was changed")
	if res.FailedPhase != PhaseBuild {
		t.Errorf("failed phase %q, want %q", res.FailedPhase, PhaseBuild)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changed: %q", got)
	}
	next := switchReq("d2")
	next.Action = ActionBuild
	h.nix.setGate(nil)
	wantOutcome(t, h.submit(next).result(), journal.StateBuilt)
}

// TestResumeRollingBack: an agent stopped during a rollback finishes it
// without starting the previous system a second time.
func TestResumeRollingBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.script(h.new, switchScript{Code: 2})
	hold := make(chan struct{})
	h.act.script(h.old, switchScript{Hold: hold})
	h.submit(switchReq("d1"))
	h.act.waitStarted(t, "panther-rollback-d1")
	unit := h.act.finished(t, "panther-rollback-d1")
	h.e.Close()
	if rec := h.record("d1"); rec.State != journal.StateRollingBack {
		t.Fatalf("record after the agent stopped mid-rollback = %+v", *rec)
	}
	close(hold)
	<-unit
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRolledBack, "exited 2")
	if got := h.act.callsWith("start-switch panther-rollback"); !slices.Equal(got, []string{"start-switch panther-rollback-d1 " + h.old + " switch"}) {
		t.Errorf("rollback switches = %q, want exactly one", got)
	}
	if h.current() != h.old {
		t.Errorf("current system = %s", h.current())
	}
}

// TestResumeRunningAfterPowerCut: a power cut during the build leaves the
// record running; after the boot it fails saying the host rebooted, not
// that the agent stopped, and nothing changed.
func TestResumeRunningAfterPowerCut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.setGate(make(chan struct{}))
	w := h.submit(switchReq("d1"))
	w.until("the build", func(ev Event) bool { return ev.Kind == EventPhaseStarted && ev.Phase == PhaseBuild })
	h.e.Close()
	h.reboot()
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateFailed, "the host rebooted during build", "nothing was changed")
	if res.FailedPhase != PhaseBuild {
		t.Errorf("failed phase %q, want %q", res.FailedPhase, PhaseBuild)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changed: %q", got)
	}
}
