package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/nixtest"
)

// A clean shutdown or reboot of the host is not a failure (issue 11, item
// 3). A reboot started inside the host — an operator's `systemctl reboot`,
// an activation that reboots, a watchdog — stops the agent and a running
// switch the way a real machine does, while pantherctl follows the
// deployment. Before, the agent went on judging during the shutdown: it saw
// the switch unit stopped or the system "stopping", tried to roll back,
// systemd refused the rollback unit ("transaction is destructive") and the
// deployment ended "manual", with nothing rolled back after the boot. Now
// the agent asks systemd whether the host is going down before judging,
// records that the reboot interrupted it, does nothing destructive, and
// decides after the boot from what runs: the previous system → rolled back
// without a switch; the new one, unconfirmed → rolled back by a switch.
//
// Every case ends with the previous system running in every sense
// (/run/current-system, the profile, the boot entry, its units), the record
// final (never manual) with a reason that tells of the reboot, and
// pantherctl's exit code 4 (3 when the reboot struck before the switch).
// The cases share one fleet and run in order.
// Helpers carry an "sd" prefix.

// sdFault is what stops the host.
type sdFault int

const (
	sdReboot     sdFault = iota // `systemctl reboot` inside the host
	sdActivation                // the new system's activation reboots the host (variant reboot-switch)
	sdPowerCut                  // PID 1 killed, booted again (Sandbox.Crash)
)

// sdCase is one deployment a reboot interrupts.
type sdCase struct {
	name    string
	base    string // the variant the host runs before the deployment
	variant string // the variant deployed
	line    string // the log line that marks the moment (not sdActivation)
	window  bool   // strike once the window is open, pantherctl frozen
	fault   sdFault

	state  journal.State
	reason string // in the record's reason
	phase  string // the record's phase
	exit   int    // pantherctl's exit code; 0 means 4 (rolled back)
	// unchanged: the reboot struck before the switch; nothing changed.
	unchanged bool
}

// sdRollbackPaused marks a rollback to slow-switch under way: its
// activation pauses (the line is the slow variant's, logged by the
// rollback's switch into the deployment's log after "[rollback] started").
const sdRollbackPaused = ftSwitchPaused

func sdCases() []sdCase {
	return []sdCase{
		// dry-activate's unit is stopped by the shutdown: not a failure of
		// the new system, nothing changed (exit 3).
		{name: "reboot during dry-activate", base: nixtest.Good, variant: nixtest.SlowDry, line: "lab: slow dry-activate: sleeping", fault: sdReboot,
			state: journal.StateFailed, phase: "dry-activate", reason: "the host rebooted during dry-activate; nothing was changed", exit: 3, unchanged: true},
		{name: "reboot during the switch", base: nixtest.Good, variant: nixtest.SlowSwitch, line: ftSwitchPaused, fault: sdReboot,
			// switch wrote the boot entry before activating: the new
			// system boots, unconfirmed, and is rolled back.
			state: journal.StateRolledBack, phase: "switch", reason: "the host rebooted during the switch"},
		{name: "reboot during health", base: nixtest.Good, variant: nixtest.GoodV2, line: ftHealthStarted, fault: sdReboot,
			state: journal.StateRolledBack, phase: "health", reason: "the host rebooted during health"},
		{name: "reboot awaiting confirmation", base: nixtest.Good, variant: nixtest.GoodV2, line: ftHealthStarted, window: true, fault: sdReboot,
			state: journal.StateRolledBack, phase: "confirm", reason: "rebooted before the deployment was confirmed"},
		{name: "activation reboots the host", base: nixtest.Good, variant: nixtest.RebootSwitch, fault: sdActivation,
			state: journal.StateRolledBack, phase: "switch", reason: "the host rebooted during the switch"},
		// The previous system is slow-switch: the rollback's own switch
		// pauses, long enough to strike in. Its boot entry is written
		// first, so the previous system boots: nothing is left to do.
		{name: "reboot during the rollback", base: nixtest.SlowSwitch, variant: nixtest.UnitFail, line: "[rollback] started", fault: sdReboot,
			state: journal.StateRolledBack, phase: "rollback", reason: "the previous system is running"},
		{name: "power cut during health", base: nixtest.Good, variant: nixtest.GoodV2, line: ftHealthStarted, fault: sdPowerCut,
			state: journal.StateRolledBack, phase: "health", reason: "the host rebooted during health"},
		{name: "power cut during the rollback", base: nixtest.SlowSwitch, variant: nixtest.UnitFail, line: "[rollback] started", fault: sdPowerCut,
			state: journal.StateRolledBack, phase: "rollback", reason: "the previous system is running"},
	}
}

// TestShutdownIsNotAFailure runs sdCases on one host.
func TestShutdownIsNotAFailure(t *testing.T) {
	// The health phase lasts the 3s settle, long enough to strike in.
	x := newFTFleet(t, "3s")
	for _, tc := range sdCases() {
		t.Run(tc.name, func(t *testing.T) { sdRun(t, x, tc) })
		if t.Failed() {
			t.FailNow() // the host may be anywhere
		}
	}
	if st := x.f.WaitReachable(t, "alpha", time.Minute); !strings.Contains(st.Stdout, x.h.CurrentSystem(t)) {
		t.Errorf("status does not show the current system:\n%s", st)
	}
}

// sdRun deploys tc.variant over tc.base, strikes and checks the end.
func sdRun(t *testing.T, x *ftFleet, tc sdCase) {
	f, h := x.f, x.h
	const window = 30 * time.Second
	f.SetVariant("alpha", tc.base)
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	before := h.CurrentSystem(t)
	x.wantQuiet(t)
	known := h.Deployments(t)

	f.SetVariant("alpha", tc.variant)
	boots := h.SB.Boots()
	p := ftStartCtl(t, f, false, "deploy", "alpha", "--json", "--yes", "--confirm-timeout", window.String(), "--flake", f.Flake)
	var id string
	switch tc.fault {
	case sdActivation:
		id = ftWaitLog(t, h, p, known, "lab: the activation reboots the host")
	default:
		id = ftWaitLog(t, h, p, known, tc.line)
		if tc.line == "[rollback] started" {
			ftWaitLogLine(t, h, id, sdRollbackPaused)
		}
	}
	if tc.window {
		p.signal(t, syscall.SIGSTOP)
		h.WaitRecord(t, id, time.Minute, journal.StateAwaiting)
	}
	switch tc.fault {
	case sdReboot:
		boots = h.RebootFromInside(t)
	case sdPowerCut:
		h.SB.Crash(t)
	}
	if tc.fault != sdPowerCut {
		h.WaitBack(t, boots, 2*time.Minute)
	}
	rec := h.WaitRecord(t, id, 3*time.Minute, ftFinalStates()...)
	t.Logf("%s: %s (%s)", id, rec.State, rec.Reason)
	if tc.window {
		p.signal(t, syscall.SIGCONT)
	}
	res := p.wait(t, 3*time.Minute)

	wantExit := 4
	if tc.exit != 0 {
		wantExit = tc.exit
	}
	if res.Code != wantExit {
		t.Errorf("pantherctl: exit %d, want %d\n%s", res.Code, wantExit, res)
	}
	if rec.State != tc.state || !strings.Contains(rec.Reason, tc.reason) || rec.Phase != tc.phase {
		t.Errorf("record %s: %s in %s (%s), want %s in %s (%s)\n%s", id, rec.State, rec.Phase, rec.Reason, tc.state, tc.phase, tc.reason, h.DeploymentLog(t, id))
	}
	if !tc.unchanged && rec.PreviousPath != before {
		t.Errorf("record: previousPath %s, want %s", rec.PreviousPath, before)
	}
	if rec.Interrupted == "" && tc.fault != sdPowerCut && !tc.window {
		t.Errorf("record %s: no interruption recorded\n%s", id, h.DeploymentLog(t, id))
	}
	// The previous system runs, is the profile's current generation and
	// the boot default; its units are installed and active.
	rejected := rec.NewPath
	if tc.unchanged {
		rejected = "" // never installed
	}
	x.dm.wantSystem(t, before, rejected)
	if got := h.BootDefault(t); got != before {
		t.Errorf("boot default %s, want the previous system %s", got, before)
	}
	x.wantQuiet(t)
}
