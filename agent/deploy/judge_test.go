package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// How the engine judges switch-to-configuration's answers (issue: the agent
// meets s-t-c-ng's real contract).

func TestExit4JudgedAgainstTheBaseline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		before, after  []string // units systemd reports failed before and after the switch
		healthOK       bool     // the rest of the health check (critical units, checks)
		want           journal.State
		wantPrevFailed []string
		msgs           []string
	}{
		{name: "only units that failed before", before: []string{"old-broken.service"}, after: []string{"old-broken.service"},
			healthOK: true, want: journal.StateConfirmed, wantPrevFailed: []string{"old-broken.service"}},
		{name: "a new failure", before: []string{"old-broken.service"}, after: []string{"new-broken.service", "old-broken.service"},
			healthOK: true, want: journal.StateRolledBack, wantPrevFailed: []string{"old-broken.service"},
			msgs: []string{"health check failed", "new-broken.service", "failed since the baseline"}},
		{name: "a critical unit down", before: []string{"old-broken.service"}, after: []string{"old-broken.service"},
			healthOK: false, want: journal.StateRolledBack, wantPrevFailed: []string{"old-broken.service"},
			msgs: []string{"health check failed", "critical-unit postgresql.service"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.health.setFailed(tc.before...)
			if !tc.healthOK {
				h.health.script(false, "critical-unit postgresql.service: inactive (dead)", nil)
			}
			// The switch fails the units it fails and exits 4, as s-t-c does
			// for any failed unit.
			hold := make(chan struct{})
			h.act.script(h.new, switchScript{Code: stcUnitsFailed, Hold: hold})
			req := switchReq("d1")
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			h.act.waitStarted(t, "panther-switch-d1")
			h.health.setFailed(tc.after...)
			close(hold)
			var res *Result
			if tc.want == journal.StateConfirmed {
				w.awaiting()
				var err error
				if res, err = h.e.Confirm("d1", "alice"); err != nil {
					t.Fatal(err)
				}
			} else {
				res = w.result()
			}
			wantOutcome(t, res, tc.want, tc.msgs...)
			if res.SwitchExitCode != stcUnitsFailed {
				t.Errorf("exit code = %d", res.SwitchExitCode)
			}
			if !slices.Equal(res.PreviouslyFailed, tc.wantPrevFailed) {
				t.Errorf("previously failed = %q, want %q", res.PreviouslyFailed, tc.wantPrevFailed)
			}
			_, checks := h.health.calls()
			if len(checks) != 1 || !slices.Equal(checks[0].Baseline, tc.before) {
				t.Errorf("health checks = %+v, want one against the baseline %q", checks, tc.before)
			}
			if tc.wantPrevFailed != nil && !slices.ContainsFunc(w.warnings(), func(s string) bool {
				return strings.Contains(s, "failed before the switch already") && strings.Contains(s, "old-broken.service")
			}) {
				t.Errorf("warnings %q do not report the units that failed before", w.warnings())
			}
		})
	}
}

func TestExit100IsRebootRequiredNotARollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// s-t-c test with another init interface: nothing activated, exit 100;
	// the agent then makes it the boot default (profile + boot), as switch
	// would have.
	h.act.script(h.new, switchScript{Code: stcRebootRequired, NoLink: true})
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateRebootRequired, "boot default", "not activated", "reboot")
	if res.SwitchExitCode != 100 || res.StorePath != h.new || res.Generation != 2 || !slices.Equal(res.RebootRequired, []string{"system"}) {
		t.Errorf("result = %+v", *res)
	}
	if got, want := h.act.callsWith("start-switch"), []string{"start-switch panther-switch-d1 " + h.new + " test", "start-switch panther-boot-d1 " + h.new + " boot"}; !slices.Equal(got, want) {
		t.Errorf("switches = %q, want %q (no rollback)", got, want)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 1 {
		t.Errorf("profile changes = %q, want the new system kept as the boot default", got)
	}
	if h.current() != h.old {
		t.Errorf("current system = %s, want the old one still running", h.current())
	}
	if !journal.StateRebootRequired.Final() {
		t.Error("reboot-required is not final")
	}
}

func TestDryActivate100NeedsABoot(t *testing.T) {
	t.Parallel()
	t.Run("dry-activate says so", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.act.dryCode = 100
		req := switchReq("d1")
		req.Action = ActionDryActivate
		w := h.submit(req)
		sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
		if !strings.Contains(sum.NotActivatable, "exited 100") {
			t.Errorf("summary NotActivatable = %q", sum.NotActivatable)
		}
		if log, _ := os.ReadFile(h.j.LogPath("d1")); !strings.Contains(string(log), "not activatable live: dry-activate exited 100") {
			t.Errorf("the summary's log line does not say so:\n%s", log)
		}
		wantOutcome(t, w.result(), journal.StateDryActivated, "cannot be activated live", "--boot", "after a reboot")
	})
	t.Run("a switch only sets the boot default", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.act.dryCode = 100
		w := h.submit(switchReq("d1"))
		res := w.result()
		wantOutcome(t, res, journal.StateRebootRequired, "not activated", "dry-activate exited 100")
		if got, want := h.act.callsWith("start-switch"), []string{"start-switch panther-switch-d1 " + h.new + " boot"}; !slices.Equal(got, want) {
			t.Errorf("switches = %q, want %q", got, want)
		}
		if n, _ := h.health.calls(); n != 0 {
			t.Errorf("a baseline was taken for a boot switch")
		}
	})
	t.Run("dry-activate finds the switch lock held", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.act.dryCode = 11
		res := h.submit(switchReq("d1")).result()
		wantOutcome(t, res, journal.StateFailed, "another switch is running on the host", "nothing was changed")
		if got := h.nix.callsWith("set-profile"); len(got) != 0 {
			t.Errorf("profile changed: %q", got)
		}
	})
	t.Run("another dry-activate failure still fails", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.act.dryCode = 1
		wantOutcome(t, h.submit(switchReq("d1")).result(), journal.StateFailed, "dry-activate")
	})
}

// holdLock takes path's flock as another switch-to-configuration would.
func holdLock(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

func TestSwitchLockHeldRefusesBeforeTheProfile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	holdLock(t, h.opts.SwitchLock)
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateFailed, "another switch is running on the host", "nothing was changed")
	if res.FailedPhase != PhaseSwitch {
		t.Errorf("failed phase = %q", res.FailedPhase)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changed: %q", got)
	}
	if got := h.act.callsWith("start-switch"); len(got) != 0 {
		t.Errorf("switched: %q", got)
	}
}

func TestSwitchLockFree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lock := filepath.Join(dir, "switch-to-configuration.lock")
	if held, err := switchLockHeld(lock); held || err != nil {
		t.Errorf("missing lock file: held %v, %v", held, err)
	}
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if held, err := switchLockHeld(lock); held || err != nil {
		t.Errorf("free lock: held %v, %v", held, err)
	}
	holdLock(t, lock)
	if held, err := switchLockHeld(lock); !held || err != nil {
		t.Errorf("held lock: held %v, %v", held, err)
	}
}

func TestExit11RestoresTheProfileOnly(t *testing.T) {
	t.Parallel()
	for _, mode := range []Action{ActionSwitch, ActionBoot} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			// The lock was taken between the agent's test and s-t-c's own.
			h.act.script(h.new, switchScript{Code: stcLocked, NoLink: true})
			req := switchReq("d1")
			req.Action = mode
			res := h.submit(req).result()
			if mode == ActionSwitch {
				// test-then-boot: the profile never moved.
				wantOutcome(t, res, journal.StateFailed, "another switch is running on the host", "exited 11", "profile and the boot default did not change")
				if got := h.nix.callsWith("set-profile"); len(got) != 0 {
					t.Errorf("profile changes %q, want none", got)
				}
				if got := h.act.callsWith("start-switch"); len(got) != 1 {
					t.Errorf("switches = %q, want only the deploy", got)
				}
				return
			}
			wantOutcome(t, res, journal.StateFailed, "another switch is running on the host", "exited 11", "profile is restored")
			want := []string{"set-profile " + h.opts.Profile + " " + h.new, "set-profile " + h.opts.Profile + " " + h.old}
			if got := h.nix.callsWith("set-profile"); !slices.Equal(got, want) {
				t.Errorf("profile changes:\n got %q\nwant %q", got, want)
			}
			if got := h.act.callsWith("start-switch"); len(got) != 1 {
				t.Errorf("switches = %q, want only the deploy: nothing was activated, nothing to switch back", got)
			}
		})
	}
}

// withUnit makes a toplevel carry the agent's unit file.
func withUnit(t *testing.T, toplevel, unit string) {
	t.Helper()
	dir := filepath.Join(toplevel, "etc/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, unit), []byte("[Service]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStoppingTheAgentNeedsForce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(h *harness)
		action  Action
		force   bool
		want    journal.State
		msgs    []string
		noSwtch bool
	}{
		{name: "dry-activate would stop it", setup: func(h *harness) {
			h.act.dry[h.new] = []string{"would stop the following units: nginx.service, panther-agent.service"}
		}, action: ActionSwitch, want: journal.StateFailed, msgs: []string{"would stop panther-agent.service", "--force"}, noSwtch: true},
		{name: "the new system has no agent unit", setup: func(h *harness) {
			withUnit(h.t, h.old, "panther-agent.service")
		}, action: ActionSwitch, want: journal.StateFailed, msgs: []string{"has no panther-agent.service", "--force"}, noSwtch: true},
		{name: "boot without the agent unit", setup: func(h *harness) {
			withUnit(h.t, h.old, "panther-agent.service")
		}, action: ActionBoot, want: journal.StateFailed, msgs: []string{"has no panther-agent.service"}, noSwtch: true},
		{name: "forced", setup: func(h *harness) {
			h.act.dry[h.new] = []string{"would stop the following units: panther-agent.service"}
		}, action: ActionSwitch, force: true, want: journal.StateAwaiting},
		{name: "not stopped, only restarted", setup: func(h *harness) {
			h.act.dry[h.new] = []string{"would NOT stop the following changed units: panther-agent.service", "would restart the following units: panther-agent.service"}
			withUnit(h.t, h.old, "panther-agent.service")
			withUnit(h.t, h.new, "panther-agent.service")
		}, action: ActionSwitch, want: journal.StateAwaiting},
		{name: "a dry run says so", setup: func(h *harness) {
			h.act.dry[h.new] = []string{"would stop the following units: panther-agent.service"}
		}, action: ActionDryActivate, want: journal.StateDryActivated, msgs: []string{"would stop panther-agent.service", "needs --force"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tc.setup(h)
			req := switchReq("d1")
			req.Action, req.Force = tc.action, tc.force
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			if tc.want == journal.StateAwaiting {
				w.awaiting()
				return
			}
			res := w.result()
			wantOutcome(t, res, tc.want, tc.msgs...)
			if tc.noSwtch {
				if got := h.nix.callsWith("set-profile"); len(got) != 0 {
					t.Errorf("profile changed: %q", got)
				}
				if res.FailedPhase != PhaseDryActivate {
					t.Errorf("failed phase = %q", res.FailedPhase)
				}
			}
		})
	}
}

func TestStoppingTheAgentErrIs(t *testing.T) {
	d := &deployment{}
	err := d.refuseStoppingAgent(&Summary{StopsAgent: "x"}, Request{})
	if !errors.Is(err, ErrStopsAgent) {
		t.Errorf("err = %v", err)
	}
}

// bootParts makes toplevel's kernel, initrd and kernel-modules links point
// into dir/<name>-<part>.
func bootParts(t *testing.T, toplevel, dir string, names map[string]string) {
	t.Helper()
	for part, name := range names {
		target := filepath.Join(dir, name)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(target, "version"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(toplevel, part))
		if err := os.Symlink(target, filepath.Join(toplevel, part)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRebootRequiredByANewKernel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	store := filepath.Join(h.dir, "store")
	bootParts(t, h.old, store, map[string]string{"kernel": "k1", "initrd": "i1", "kernel-modules": "m1"})
	bootParts(t, h.new, store, map[string]string{"kernel": "k2", "initrd": "i1", "kernel-modules": "m2"})
	if err := os.Symlink(h.old, h.opts.BootedSystem); err != nil {
		t.Fatal(err)
	}
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	w := h.submit(req)
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if want := []string{"kernel", "kernel-modules"}; !slices.Equal(sum.RebootRequired, want) {
		t.Errorf("summary reboot required = %q, want %q", sum.RebootRequired, want)
	}
	w.awaiting()
	if !slices.ContainsFunc(w.warnings(), func(s string) bool { return strings.Contains(s, "reboot required") && strings.Contains(s, "kernel") }) {
		t.Errorf("warnings %q lack the reboot", w.warnings())
	}
	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kernel", "kernel-modules"}; !slices.Equal(res.RebootRequired, want) {
		t.Errorf("result reboot required = %q, want %q", res.RebootRequired, want)
	}
	if got := rebootRequired(h.opts.BootedSystem, h.old); len(got) != 0 {
		t.Errorf("the booted system itself needs a reboot: %q", got)
	}
	if got := rebootRequired(filepath.Join(h.dir, "nowhere"), h.new); got != nil {
		t.Errorf("no booted system: %q", got)
	}
}

// TestRebootRequiredByContent: parts that are files and directories of the
// toplevel itself (not links into the store) are compared by content.
func TestRebootRequiredByContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name, kernel, modVersion string) string {
		top := filepath.Join(dir, name)
		for path, content := range map[string]string{
			"kernel": "kernel " + kernel, "initrd": "initrd", "kernel-modules/lib/modules/" + modVersion + "/modules.dep": "deps",
		} {
			p := filepath.Join(top, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return top
	}
	booted := mk("booted", "6.6", "6.6")
	if got := rebootRequired(booted, mk("same", "6.6", "6.6")); len(got) != 0 {
		t.Errorf("same kernel in another toplevel: reboot required %q", got)
	}
	if got, want := rebootRequired(booted, mk("new", "6.12", "6.12")), []string{"kernel", "kernel-modules"}; !slices.Equal(got, want) {
		t.Errorf("new kernel: reboot required %q, want %q", got, want)
	}
	if sameTree(filepath.Join(booted, "kernel"), filepath.Join(dir, "same", "kernel"), 4) {
		t.Error("sameTree read past its budget")
	}
}

func TestSwitchInhibitors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		check    checkScript
		want     journal.State
		mode     string
		msgs     []string
		warnings string
	}{
		{name: "allowed", check: checkScript{}, want: journal.StateAwaiting, mode: "test"},
		{name: "refused", check: checkScript{Code: 1, Lines: []string{"changes to critical components: dbus-broker", "Pre-switch checks failed"}},
			want: journal.StateRebootRequired, mode: "boot", msgs: []string{"inhibitors refused", "changes to critical components: dbus-broker", "reboot"}},
		{name: "older s-t-c without check", check: checkScript{Code: 1, Lines: []string{"Usage: switch-to-configuration [switch|boot|test]"}},
			want: journal.StateAwaiting, mode: "test"},
		{name: "lock held during the check", check: checkScript{Code: 11, Lines: []string{"Could not acquire lock"}},
			want: journal.StateAwaiting, mode: "test", warnings: "another switch is running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.act.checks[h.new] = tc.check
			req := switchReq("d1")
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			if tc.want == journal.StateAwaiting {
				w.awaiting()
			} else {
				wantOutcome(t, w.result(), tc.want, tc.msgs...)
			}
			if got, want := h.act.callsWith("start-switch"), []string{"start-switch panther-switch-d1 " + h.new + " " + tc.mode}; !slices.Equal(got, want) {
				t.Errorf("switches = %q, want %q (never a forced switch)", got, want)
			}
			if tc.warnings != "" && !slices.ContainsFunc(w.warnings(), func(s string) bool { return strings.Contains(s, tc.warnings) }) {
				t.Errorf("warnings %q lack %q", w.warnings(), tc.warnings)
			}
		})
	}
}

func TestParseDryActivate(t *testing.T) {
	t.Parallel()
	lines := []string{
		"would stop the following units: a.service, panther-agent.service",
		"would NOT stop the following changed units: keep.service",
		"would stop swap device: /dev/sda2",
		"would activate the configuration...",
		"setting up /etc...",
		"would restart systemd",
		"would reload the following units: dbus.service",
		"would restart the following units: nginx.service, sshd.service",
		"would start the following units: new.service",
	}
	var s Summary
	for _, l := range lines {
		parseDryActivateLine(l, &s)
	}
	want := Summary{
		WouldStop: []string{"a.service", "panther-agent.service"}, WouldNotStop: []string{"keep.service"},
		WouldActivate: true, WouldRestartSystemd: true, WouldReload: []string{"dbus.service"},
		WouldRestart: []string{"nginx.service", "sshd.service"}, WouldStart: []string{"new.service"},
	}
	if !slices.Equal(s.WouldStop, want.WouldStop) || !slices.Equal(s.WouldNotStop, want.WouldNotStop) ||
		!slices.Equal(s.WouldReload, want.WouldReload) || !slices.Equal(s.WouldRestart, want.WouldRestart) ||
		!slices.Equal(s.WouldStart, want.WouldStart) || !s.WouldActivate || !s.WouldRestartSystemd {
		t.Errorf("parsed %+v\nwant %+v", s, want)
	}
}

func TestExitMeaning(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{0: "ok", 1: "pre-switch check", 2: "activation script", 4: "units failed",
		11: "holds its lock", 100: "reboot is required", -1: "killed", 13: "permission denied", 200: "unexpected"} {
		if got := exitMeaning(code); !strings.Contains(got, want) {
			t.Errorf("exitMeaning(%d) = %q, want %q in it", code, got, want)
		}
	}
}

// TestRebootRequiredSurvivesARestart: a switch turned into a boot default
// (dry-activate said 100) that the agent's restart interrupts still ends
// reboot-required, from the journal.
func TestRebootRequiredSurvivesARestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.dryCode = 100
	hold := make(chan struct{})
	h.act.script(h.new, switchScript{Hold: hold})
	w := h.submit(switchReq("d1"))
	w.phaseFinished(PhaseSwitch)
	h.e.Close()
	if rec := h.record("d1"); rec.State != journal.StateSwitching || rec.SwitchMode != "boot" || rec.NotActivated == "" {
		t.Fatalf("record mid-switch = %+v", *rec)
	}
	close(hold)
	h.start()
	res := h.watch("d1").result()
	wantOutcome(t, res, journal.StateRebootRequired, "not activated", "dry-activate exited 100")
}

// TestControllerGoneDuringTheCheck: the switch inhibitors' check is part of
// dry-activate: a controller that goes away while it runs gets no switch.
func TestControllerGoneDuringTheCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	hold := make(chan struct{})
	defer close(hold)
	h.act.checks[h.new] = checkScript{Hold: hold}
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := h.e.Submit(ctx, switchReq("d1"))
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, sub: sub}
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(time.Millisecond) {
		h.act.mu.Lock()
		n := len(h.act.checked)
		h.act.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the check never started")
		}
	}
	cancel()
	wantOutcome(t, w.result(), journal.StateFailed, "the controller went away during dry-activate")
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changed: %q", got)
	}
	if got := h.act.callsWith("start-switch"); len(got) != 0 {
		t.Errorf("switched: %q", got)
	}
}
