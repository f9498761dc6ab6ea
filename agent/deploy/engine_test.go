package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

func TestHappyPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.buildLines = []string{"building '/nix/store/x-etc.drv'..."}
	h.nix.diff = []ClosureChange{{Name: "nginx", OldVersion: "1.24", NewVersion: "1.26", SizeDelta: "+12 KiB"}}
	h.act.dry[h.new] = []string{
		"would stop the following units: old.service",
		"would restart the following units: nginx.service, sshd.service",
		"would start the following units: new.service",
		"would reload the following units: dbus.service",
		"activating the configuration...",
	}
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	req.ExtraCritical = []string{"postgresql.service"}
	w := h.submit(req)

	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	wantSum := Summary{
		CurrentPath: h.old, CurrentGeneration: 1, CurrentVersion: "24.05.1",
		NewPath: h.new, NewVersion: "24.11.2",
		WouldStop: []string{"old.service"}, WouldRestart: []string{"nginx.service", "sshd.service"},
		WouldStart: []string{"new.service"}, WouldReload: []string{"dbus.service"},
	}
	if sum.CurrentPath != wantSum.CurrentPath || sum.CurrentGeneration != wantSum.CurrentGeneration ||
		sum.CurrentVersion != wantSum.CurrentVersion || sum.NewPath != wantSum.NewPath || sum.NewVersion != wantSum.NewVersion ||
		!slices.Equal(sum.WouldStop, wantSum.WouldStop) || !slices.Equal(sum.WouldRestart, wantSum.WouldRestart) ||
		!slices.Equal(sum.WouldStart, wantSum.WouldStart) || !slices.Equal(sum.WouldReload, wantSum.WouldReload) {
		t.Errorf("summary = %+v\nwant      %+v", *sum, wantSum)
	}
	if len(sum.Changes) != 1 || sum.Changes[0].Name != "nginx" {
		t.Errorf("closure changes = %+v", sum.Changes)
	}

	aw := w.awaiting()
	if aw.NewPath != h.new || aw.NewGeneration != 0 {
		t.Errorf("awaiting = %+v, want %s and no generation yet", *aw, h.new)
	}
	if left := time.Until(aw.Deadline); left <= 0 || left > 5*time.Second {
		t.Errorf("deadline in %v, want within the 5s window", left)
	}
	if got := h.current(); got != h.new {
		t.Errorf("current system = %s, want %s", got, h.new)
	}
	if st := h.e.Status(context.Background()); st.Active != "d1" || st.Pending == nil || st.Pending.ID != "d1" ||
		st.CurrentPath != h.new || st.CurrentGeneration != 1 || st.Version != "24.11.2" {
		t.Errorf("status while awaiting = %+v", st)
	}

	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, res, journal.StateConfirmed, "confirmed by alice")
	if res.StorePath != h.new || res.Generation != 2 || res.FailedPhase != "" || res.LogPath != h.j.LogPath("d1") {
		t.Errorf("result = %+v", *res)
	}
	if got := w.result(); got.Outcome != journal.StateConfirmed {
		t.Errorf("watched result = %+v", *got)
	}

	wantPhases := []string{
		"validate started", "validate ok", "build started", "build ok", "dry-activate started", "dry-activate ok",
		"switch started", "switch ok", "health started", "health ok",
	}
	if got := w.phases(); !slices.Equal(got, wantPhases) {
		t.Errorf("phases:\n got %q\nwant %q", got, wantPhases)
	}
	if !w.hasLine(PhaseBuild, "building '/nix/store/x-etc.drv'...") {
		t.Error("build output was not streamed")
	}
	if !w.hasLine(PhaseSwitch, "activating the configuration...") {
		t.Errorf("switch unit output was not followed; events:\n%s", dumpEvents(w.seen))
	}
	if hs := w.kinds(EventHealth); len(hs) != 2 || hs[1].Name != "sshd.service" || !hs[1].OK {
		t.Errorf("health events = %+v", hs)
	}

	// What touched the system, in order.
	// The profile moves at the confirm only (test-then-boot).
	if got, want := h.nix.callsWith("set-profile"), []string{"set-profile " + h.opts.Profile + " " + h.new}; !slices.Equal(got, want) {
		t.Errorf("profile changes:\n got %q\nwant %q", got, want)
	}
	// One evaluation, then the build of its derivation (evalonce.go).
	if got, want := h.nix.callsWith("evaluate"), []string{"evaluate " + testRef + " " + testHost}; !slices.Equal(got, want) {
		t.Errorf("evaluations:\n got %q\nwant %q", got, want)
	}
	if got, want := h.nix.callsWith("build"), []string{"build " + h.new + ".drv"}; !slices.Equal(got, want) {
		t.Errorf("builds:\n got %q\nwant %q", got, want)
	}
	if got, want := h.act.callsWith(""), []string{"dry-activate " + h.new, "start-switch panther-switch-d1 " + h.new + " test", "start-switch panther-boot-d1 " + h.new + " boot"}; !slices.Equal(got, want) {
		t.Errorf("activator calls:\n got %q\nwant %q", got, want)
	}
	baselines, checks := h.health.calls()
	if baselines != 1 || len(checks) != 1 || len(checks[0].Baseline) != 0 || !slices.Equal(checks[0].ExtraCritical, []string{"postgresql.service"}) {
		t.Errorf("health: %d baselines, checks %+v", baselines, checks)
	}

	rec := h.record("d1")
	if rec.State != journal.StateConfirmed || rec.PreviousPath != h.old || rec.PreviousGeneration != 1 ||
		rec.NewPath != h.new || rec.NewGeneration != 2 || rec.SwitchExitCode == nil || *rec.SwitchExitCode != 0 ||
		rec.SwitchUnit != "panther-switch-d1" || rec.SwitchMode != "test" || !rec.ProfileDeferred || rec.BootPending || rec.RequestedBy != "alice" ||
		rec.KeyID != "key1" || rec.SourceDigest != "sha256-abc" || rec.Host != testHost || rec.Finished.IsZero() {
		t.Errorf("record = %+v", *rec)
	}
	log, err := os.ReadFile(h.j.LogPath("d1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[build] started", "setting up /etc...", "[confirm] confirmed by alice", "[result] confirmed: confirmed by alice"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if st := h.e.Status(context.Background()); st.Active != "" || st.Pending != nil || st.Last == nil || st.Last.ID != "d1" {
		t.Errorf("status after confirm = %+v", st)
	}
}

// TestNothingChanges covers requests that must stop before the switch.
func TestNothingChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		setup       func(h *harness, req *Request)
		want        journal.State
		failedPhase Phase
		msgs        []string
		dryActivate bool // whether dry-activate ran
	}{
		{
			name:  "build only",
			setup: func(h *harness, req *Request) { req.Action = ActionBuild },
			want:  journal.StateBuilt, msgs: []string{"built "},
		},
		{
			name: "dry run",
			setup: func(h *harness, req *Request) {
				req.Action = ActionDryActivate
				h.act.dry[h.new] = []string{"would start the following units: new.service"}
			},
			want: journal.StateDryActivated, msgs: []string{"nothing changed"}, dryActivate: true,
		},
		{
			name:  "unknown host lists the hosts",
			setup: func(h *harness, req *Request) { h.nix.setHosts("web1", "db") },
			want:  journal.StateFailed, failedPhase: PhaseValidate,
			msgs: []string{ErrUnknownHost.Error(), `"yoga"`, "hosts: web1, db"},
		},
		{
			name: "fail on warnings",
			setup: func(h *harness, req *Request) {
				h.nix.warnings = []string{"services.foo.bar is deprecated"}
				req.FailOnWarnings = true
			},
			want: journal.StateFailed, failedPhase: PhaseValidate, msgs: []string{"1 warning(s)", "fail-on-warnings"},
		},
		{
			name: "expected path mismatch",
			setup: func(h *harness, req *Request) {
				req.ExpectedPath = filepath.Join(filepath.Dir(h.new), "cccc-nixos-system-yoga-other")
			},
			want: journal.StateFailed, failedPhase: PhaseBuild,
			msgs: []string{ErrPathMismatch.Error(), "cccc-nixos-system-yoga-other"},
		},
		{
			name:  "build fails",
			setup: func(h *harness, req *Request) { h.nix.buildErr = errFake },
			want:  journal.StateFailed, failedPhase: PhaseBuild, msgs: []string{errFake.Error()},
		},
		{
			name: "dry-activate fails",
			setup: func(h *harness, req *Request) {
				h.act.dry[h.new] = []string{"would start the following units: a.service", errFake.Error()}
				h.act.dryCode = 1
			},
			want: journal.StateFailed, failedPhase: PhaseDryActivate,
			msgs:        []string{"dry-activate: ", "/bin/switch-to-configuration dry-activate exited 1: would start the following units: a.service / " + errFake.Error()},
			dryActivate: true,
		},
		{
			name:  "flake does not evaluate",
			setup: func(h *harness, req *Request) { h.nix.hostsErr = errFake },
			want:  journal.StateFailed, failedPhase: PhaseValidate, msgs: []string{"evaluating the flake"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			req := switchReq("d1")
			tc.setup(h, &req)
			w := h.submit(req)
			res := w.result()
			wantOutcome(t, res, tc.want, tc.msgs...)
			if res.FailedPhase != tc.failedPhase {
				t.Errorf("failed phase = %q, want %q", res.FailedPhase, tc.failedPhase)
			}
			if got := h.nix.callsWith("set-profile"); len(got) != 0 {
				t.Errorf("profile changed: %q", got)
			}
			if got := h.act.callsWith("start-switch"); len(got) != 0 {
				t.Errorf("switched: %q", got)
			}
			if got := len(h.act.callsWith("dry-activate")) > 0; got != tc.dryActivate {
				t.Errorf("dry-activate ran = %v, want %v", got, tc.dryActivate)
			}
			if h.current() != h.old {
				t.Errorf("current system = %s", h.current())
			}
			if rec := h.record("d1"); rec.State != tc.want {
				t.Errorf("journal state = %s", rec.State)
			}
			// The lock is free again.
			h.nix.mu.Lock()
			h.nix.buildErr, h.nix.hostsErr = nil, nil
			h.nix.hosts = []string{"web1", testHost}
			h.nix.mu.Unlock()
			ok := switchReq("d2")
			ok.Action = ActionBuild
			if res := h.submit(ok).result(); res.Outcome != journal.StateBuilt {
				t.Errorf("next deployment: %+v", *res)
			}
		})
	}
}

func TestDryRunSummaryAndWarnings(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.warnings = []string{"w1", "w2"}
	h.act.dry[h.new] = []string{"would restart the following units: a.service,b.service", "would start the following units: c.service"}
	req := switchReq("d1")
	req.Action = ActionDryActivate
	w := h.submit(req)
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if !slices.Equal(sum.WouldRestart, []string{"a.service", "b.service"}) || !slices.Equal(sum.WouldStart, []string{"c.service"}) ||
		!slices.Equal(sum.Warnings, []string{"w1", "w2"}) {
		t.Errorf("summary = %+v", *sum)
	}
	wantOutcome(t, w.result(), journal.StateDryActivated)
	if got := w.warnings(); !slices.Equal(got, []string{"w1", "w2"}) {
		t.Errorf("warning events = %q", got)
	}
}

func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Request)
		want error
	}{
		{"bad id", func(r *Request) { r.ID = "../x" }, ErrInvalidRequest},
		{"empty id", func(r *Request) { r.ID = "" }, ErrInvalidRequest},
		{"unknown action", func(r *Request) { r.Action = "reboot" }, ErrInvalidRequest},
		{"no flake", func(r *Request) { r.FlakeRef = "" }, ErrInvalidRequest},
		{"attr injection", func(r *Request) { r.FlakeAttr = "yoga.config" }, ErrInvalidRequest},
		{"negative timeout", func(r *Request) { r.ConfirmTimeout = -time.Second }, ErrInvalidRequest},
		{"timeout too long", func(r *Request) { r.ConfirmTimeout = time.Hour }, ErrTimeoutTooLong},
		{"bad critical unit", func(r *Request) { r.ExtraCritical = []string{"a b"} }, ErrInvalidRequest},
		{"negative generation", func(r *Request) { r.Action = ActionRollback; r.Generation = -1 }, ErrInvalidRequest},
		{"rollback with an attribute", func(r *Request) { r.Action = ActionRollback; r.FlakeRef = "" }, ErrInvalidRequest},
		{"rollback with a source", func(r *Request) { r.Action = ActionRollback; r.FlakeAttr = "" }, ErrInvalidRequest},
		{"another host's configuration", func(r *Request) { r.FlakeAttr = "web1" }, ErrWrongFlakeHost},
	}
	h := newHarness(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := switchReq("d1")
			tc.edit(&req)
			if _, err := h.e.Submit(context.Background(), req); !errors.Is(err, tc.want) {
				t.Errorf("Submit: %v, want %v", err, tc.want)
			}
		})
	}
	if recs, _ := h.j.List(); len(recs) != 0 {
		t.Errorf("invalid requests left %d records", len(recs))
	}
	// A used id is refused.
	req := switchReq("d1")
	req.Action = ActionBuild
	h.submit(req).result()
	if _, err := h.e.Submit(context.Background(), req); !errors.Is(err, journal.ErrDuplicate) {
		t.Errorf("reused id: %v", err)
	}
}

func TestBusy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gate := make(chan struct{})
	h.nix.setGate(gate)
	req := switchReq("first")
	req.ConfirmTimeout = 5 * time.Second
	w := h.submit(req)
	w.until("the build", func(ev Event) bool { return ev.Kind == EventPhaseStarted && ev.Phase == PhaseBuild })

	busy := func(when string) {
		t.Helper()
		second := switchReq("second")
		second.Action = ActionBuild
		_, err := h.e.Submit(context.Background(), second)
		var be *BusyError
		if !errors.As(err, &be) || be.ID != "first" || !errors.Is(err, ErrBusy) {
			t.Fatalf("second Submit while %s: %v, want *BusyError naming first", when, err)
		}
		if _, err := h.j.Get("second"); !errors.Is(err, journal.ErrNotFound) {
			t.Errorf("a refused deployment left a record: %v", err)
		}
		if _, err := h.e.Submit(context.Background(), Request{ID: "third", Action: ActionRollback}); !errors.Is(err, ErrBusy) {
			t.Errorf("rollback while %s: %v, want ErrBusy", when, err)
		}
	}
	busy("running")
	close(gate)
	w.awaiting()
	busy("awaiting")
	res, err := h.e.Confirm("first", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, res, journal.StateConfirmed)
	if h.current() != h.new {
		t.Errorf("current system = %s", h.current())
	}
	next := switchReq("second")
	next.Action = ActionBuild
	wantOutcome(t, h.submit(next).result(), journal.StateBuilt)
}

func TestCallerGoesAwayDuringBuild(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.setGate(make(chan struct{})) // never built
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := h.e.Submit(ctx, switchReq("d1"))
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, sub: sub}
	w.until("the build", func(ev Event) bool { return ev.Kind == EventPhaseStarted && ev.Phase == PhaseBuild })
	cancel()
	res := w.result()
	wantOutcome(t, res, journal.StateFailed, "went away", "nothing was changed")
	if res.FailedPhase != PhaseBuild {
		t.Errorf("failed phase = %q", res.FailedPhase)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changed: %q", got)
	}
	if st := h.e.Status(context.Background()); st.Active != "" {
		t.Errorf("lock still held by %s", st.Active)
	}
}

// TestCallerGoesAwayDuringDryActivate: the dry-activate unit is stopped
// and cleared, not left running for nobody.
func TestCallerGoesAwayDuringDryActivate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	hold := make(chan struct{})
	defer close(hold)
	h.act.mu.Lock()
	h.act.dryHold = hold
	h.act.dry[h.new] = []string{"would start the following units: a.service"}
	h.act.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := h.e.Submit(ctx, switchReq("d1"))
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, sub: sub}
	// Its output streams while it runs, and is in the deployment log.
	w.until("dry-activate's output", func(ev Event) bool {
		return ev.Kind == EventLog && ev.Phase == PhaseDryActivate && ev.Line == "would start the following units: a.service"
	})
	cancel()
	res := w.result()
	wantOutcome(t, res, journal.StateFailed, "went away during dry-activate", "nothing was changed")
	if got := h.act.waitCleared(1); !slices.Equal(got, []string{"panther-dry-activate-d1"}) {
		t.Errorf("cleared units %q, want the dry-activate unit", got)
	}
	if h.act.loaded("panther-dry-activate-d1") {
		t.Error("the dry-activate unit is still loaded")
	}
	log, err := os.ReadFile(h.j.LogPath("d1"))
	if err != nil || !strings.Contains(string(log), "[dry-activate] would start the following units: a.service") {
		t.Errorf("deployment log (%v):\n%s", err, log)
	}
}

// TestCallerGoesAwayAfterSwitch: from the switch on, the deployment belongs
// to the agent.
func TestCallerGoesAwayAfterSwitch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	hold := make(chan struct{})
	h.act.script(h.new, switchScript{Hold: hold})
	ctx, cancel := context.WithCancel(context.Background())
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	sub, err := h.e.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, sub: sub}
	w.phaseFinished(PhaseSwitch)
	cancel()
	close(hold)
	w.awaiting()
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestSwitchExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  switchScript
		want    journal.State // after the switch: awaiting, or the final outcome
		msgs    []string
		warning string
	}{
		{name: "ok", script: switchScript{Code: 0}, want: journal.StateAwaiting},
		// Units failed (4), not activated (100) and a held lock (11): judge_test.go.
		{name: "units failed, none new", script: switchScript{Code: 4}, want: journal.StateAwaiting, warning: "reports failed units"},
		{name: "unknown error code", script: switchScript{Code: 13}, want: journal.StateRolledBack,
			msgs: []string{"switch-to-configuration exited 13", "permission denied"}},
		{name: "activation script failed", script: switchScript{Code: 2}, want: journal.StateRolledBack,
			msgs: []string{"switch-to-configuration exited 2", "activation script failed"}},
		{name: "switch-to-configuration failed", script: switchScript{Code: 1}, want: journal.StateRolledBack,
			msgs: []string{"switch-to-configuration exited 1"}},
		{name: "exit 0 but not active", script: switchScript{Code: 0, NoLink: true}, want: journal.StateRolledBack,
			msgs: []string{"after the switch", "not " + "NEW"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.act.script(h.new, tc.script)
			req := switchReq("d1")
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			if tc.want == journal.StateAwaiting {
				w.awaiting()
				if tc.warning != "" && !slices.ContainsFunc(w.warnings(), func(s string) bool { return strings.Contains(s, tc.warning) }) {
					t.Errorf("warnings %q lack %q", w.warnings(), tc.warning)
				}
				if rec := h.record("d1"); rec.SwitchExitCode == nil || *rec.SwitchExitCode != tc.script.Code {
					t.Errorf("recorded exit code = %v", rec.SwitchExitCode)
				}
				return
			}
			res := w.result()
			var msgs []string
			for _, m := range tc.msgs {
				msgs = append(msgs, strings.ReplaceAll(m, "NEW", h.new))
			}
			wantOutcome(t, res, tc.want, msgs...)
			checkRolledBack(t, h, "d1", res, PhaseSwitch)
			if res.SwitchExitCode != tc.script.Code {
				t.Errorf("result exit code = %d, want %d", res.SwitchExitCode, tc.script.Code)
			}
			if got := w.warnings(); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "rolling back: ") {
				t.Errorf("no rolling back warning: %q", got)
			}
			if _, checks := h.health.calls(); len(checks) != 0 {
				t.Errorf("health was checked after a failed switch")
			}
		})
	}
}

// checkRolledBack checks that deployment id went back to h.old the way a
// rollback must: profile set back, the previous system switched to,
// recorded in the journal.
func checkRolledBack(t *testing.T, h *harness, id string, res *Result, failed Phase) {
	t.Helper()
	// test-then-boot: the profile (the boot default) never moved.
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changes: %q, want none", got)
	}
	wantSwitches := []string{"start-switch panther-switch-" + id + " " + h.new + " test", "start-switch panther-rollback-" + id + " " + h.old + " switch"}
	if got := h.act.callsWith("start-switch"); !slices.Equal(got, wantSwitches) {
		t.Errorf("switches:\n got %q\nwant %q", got, wantSwitches)
	}
	if h.current() != h.old {
		t.Errorf("current system = %s, want the previous %s", h.current(), h.old)
	}
	if res.StorePath != h.old || res.Generation != 1 {
		t.Errorf("result points at %s generation %d, want %s generation 1 (never left)", res.StorePath, res.Generation, h.old)
	}
	if res.FailedPhase != failed {
		t.Errorf("failed phase = %q, want %q", res.FailedPhase, failed)
	}
	rec := h.record(id)
	if rec.State != journal.StateRolledBack || rec.PreviousPath != h.old || rec.PreviousGeneration != 1 ||
		rec.NewPath != h.new || rec.NewGeneration != 0 || rec.RollbackGeneration != 0 || rec.Reason != res.Message {
		t.Errorf("record = %+v", *rec)
	}
	if st := h.e.Status(context.Background()); st.Active != "" || st.Pending != nil {
		t.Errorf("status after rollback = %+v", st)
	}
}

func TestHealthFailureRollsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ok     bool
		reason string
		err    error
		msgs   []string
	}{
		{name: "unhealthy", reason: "nginx.service failed", msgs: []string{"health check failed: nginx.service failed"}},
		{name: "check error", ok: true, err: errFake, msgs: []string{"health check failed: " + errFake.Error()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.health.script(tc.ok, tc.reason, tc.err)
			w := h.submit(switchReq("d1"))
			res := w.result()
			wantOutcome(t, res, journal.StateRolledBack, tc.msgs...)
			checkRolledBack(t, h, "d1", res, PhaseHealth)
		})
	}
}

func TestDeadManRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.submit(switchReq("d1")) // the default 200ms window
	aw := w.awaiting()
	res := w.result()
	if time.Now().Before(aw.Deadline) {
		t.Errorf("rolled back before the deadline %s", aw.Deadline)
	}
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed within 200ms")
	checkRolledBack(t, h, "d1", res, PhaseConfirm)
	if _, err := h.e.Confirm("d1", "alice"); !errors.Is(err, ErrNotPending) {
		t.Errorf("Confirm after the rollback: %v, want ErrNotPending", err)
	}
}

func TestConfirmAfterDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = time.Minute
	w, _ := h.deployAwaiting(req)
	h.clock.advance(time.Minute + time.Second) // the timer has not fired yet
	_, err := h.e.Confirm("d1", "alice")
	if !errors.Is(err, ErrDeadlinePassed) {
		t.Fatalf("late Confirm: %v, want ErrDeadlinePassed", err)
	}
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed within 1m0s")
	checkRolledBack(t, h, "d1", res, PhaseConfirm)
}

func TestConfirmErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("built")
	req.Action = ActionBuild
	h.submit(req).result()
	failed := switchReq("failed")
	h.nix.setHosts("web1")
	h.submit(failed).result()
	h.nix.setHosts("web1", testHost)

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"unknown", "nosuch", journal.ErrNotFound},
		{"bad id", "../x", journal.ErrBadID},
		{"build only", "built", ErrNotPending},
		{"failed", "failed", ErrNotPending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.e.Confirm(tc.id, "alice"); !errors.Is(err, tc.want) {
				t.Errorf("Confirm(%s): %v, want %v", tc.id, err, tc.want)
			}
		})
	}

	sw := switchReq("sw")
	sw.ConfirmTimeout = 5 * time.Second
	h.deployAwaiting(sw)
	if _, err := h.e.Confirm("sw", "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := h.e.Confirm("sw", "bob")
	if !errors.Is(err, ErrNotPending) || !strings.Contains(err.Error(), "already confirmed") {
		t.Errorf("second Confirm: %v", err)
	}
	if rec := h.record("sw"); rec.Reason != "confirmed by alice" {
		t.Errorf("reason = %q", rec.Reason)
	}
}

func TestRollbackFailureNeedsAPerson(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.script(h.new, switchScript{Code: 2})
	h.act.script(h.old, switchScript{Code: 2})
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateManual, "switch-to-configuration exited 2", "rollback failed", "exited 2")
	want := []string{
		"nix-env -p " + h.opts.Profile + " --set " + h.old,
		h.old + "/bin/switch-to-configuration switch",
	}
	if !slices.Equal(res.RecoveryCommands, want) {
		t.Errorf("recovery commands:\n got %q\nwant %q", res.RecoveryCommands, want)
	}
	if res.FailedPhase != PhaseRollback {
		t.Errorf("failed phase = %q, want rollback", res.FailedPhase)
	}
	rec := h.record("d1")
	if rec.State != journal.StateManual || !slices.Equal(rec.RecoveryCommands, want) {
		t.Errorf("record = %+v", *rec)
	}
	log, _ := os.ReadFile(h.j.LogPath("d1"))
	if !strings.Contains(string(log), "recover with: "+want[0]) {
		t.Errorf("log lacks the recovery commands:\n%s", log)
	}
	if st := h.e.Status(context.Background()); st.Active != "" {
		t.Errorf("lock still held by %s", st.Active)
	}
}

func TestFirstDeploymentFailingNeedsAPerson(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t) // no current system, empty profile
	h.start()
	h.act.script(h.new, switchScript{Code: 2})
	w := h.submit(switchReq("d1"))
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if sum.CurrentPath != "" || sum.CurrentGeneration != 0 {
		t.Errorf("summary of a first deployment = %+v", *sum)
	}
	res := w.result()
	wantOutcome(t, res, journal.StateManual, "exited 2", "no previous system")
	if len(res.RecoveryCommands) != 2 || !strings.Contains(res.RecoveryCommands[0], h.opts.Profile+" --list-generations") {
		t.Errorf("recovery commands = %q", res.RecoveryCommands)
	}
	if got := h.act.callsWith("start-switch"); len(got) != 1 {
		t.Errorf("switches = %q, want only the deploy", got)
	}
}

func TestKilledSwitchRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.script(h.new, switchScript{Killed: true})
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateRolledBack, "switch-to-configuration test was killed by SIGKILL")
	checkRolledBack(t, h, "d1", res, PhaseSwitch)
}

// TestSwitchUnitEnds: how systemd says the switch unit ended decides the
// outcome, and every unit is cleared once its end is recorded.
func TestSwitchUnitEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script switchScript
		want   journal.State
		msg    string
	}{
		{"exit 0", switchScript{}, journal.StateAwaiting, ""},
		{"exit 2", switchScript{Code: 2}, journal.StateRolledBack, "switch-to-configuration exited 2: the activation script failed"},
		{"killed", switchScript{Killed: true}, journal.StateRolledBack, "switch-to-configuration test was killed by SIGKILL"},
		{"deadline", switchScript{TimedOut: true}, journal.StateRolledBack, "switch-to-configuration test did not finish within 3m0s: systemd stopped it"},
		{"gone", switchScript{Gone: true}, journal.StateRolledBack, "switch-to-configuration test was interrupted: unit panther-switch-d1 is gone without an exit status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newBareHarness(t)
			h.opts.SwitchTimeout = 3 * time.Minute
			h.nix.seed(h.old)
			h.link(h.old)
			h.start()
			h.act.script(h.new, tc.script)
			req := switchReq("d1")
			req.InstallBootloader = true
			w := h.submit(req)
			var res *Result
			if tc.want == journal.StateAwaiting {
				w.awaiting()
			} else {
				res = w.result()
				wantOutcome(t, res, tc.want, tc.msg)
				checkRolledBack(t, h, "d1", res, PhaseSwitch)
			}
			h.act.mu.Lock()
			specs := slices.Clone(h.act.specs)
			h.act.mu.Unlock()
			for _, s := range specs {
				if s.Deadline != 3*time.Minute || !s.InstallBootloader || s.Output == "" {
					t.Errorf("unit %s: deadline %v, install boot loader %v, output %q", s.Unit, s.Deadline, s.InstallBootloader, s.Output)
				}
			}
			wantCleared := []string{"panther-dry-activate-d1", "panther-check-d1", "panther-switch-d1"}
			if res != nil {
				wantCleared = append(wantCleared, "panther-rollback-d1")
			}
			if tc.script.Gone {
				wantCleared = slices.Delete(wantCleared, 2, 3) // systemd dropped it itself
			}
			// The last unit is cleared just after the result is out.
			if cleared := h.act.waitCleared(len(wantCleared)); !slices.Equal(cleared, wantCleared) {
				t.Errorf("cleared units %q, want %q", cleared, wantCleared)
			}
		})
	}
}

func TestStartSwitchFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.mu.Lock()
	h.act.startErr = errFake
	h.act.mu.Unlock()
	res := h.submit(switchReq("d1")).result()
	// Nothing can be started, so the rollback cannot switch either.
	wantOutcome(t, res, journal.StateManual, "starting panther-switch-d1", "rollback failed")
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile changes = %q, want none (test-then-boot)", got)
	}
}

func TestBootMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("d1")
	req.Action = ActionBoot
	w := h.submit(req)
	res := w.result()
	wantOutcome(t, res, journal.StateBootScheduled, "boot default", "next boot")
	if res.StorePath != h.new || res.Generation != 2 {
		t.Errorf("result = %+v", *res)
	}
	if got := h.act.callsWith("start-switch"); !slices.Equal(got, []string{"start-switch panther-switch-d1 " + h.new + " boot"}) {
		t.Errorf("switches = %q", got)
	}
	if h.current() != h.old {
		t.Errorf("boot mode changed the running system to %s", h.current())
	}
	if n, checks := h.health.calls(); n != 0 || len(checks) != 0 {
		t.Errorf("boot mode checked health: %d baselines, %d checks", n, len(checks))
	}
	if w.kinds(EventAwaiting) != nil {
		t.Error("boot mode awaited confirmation")
	}
	h.e.mu.Lock()
	timers := len(h.e.timers)
	h.e.mu.Unlock()
	if timers != 0 {
		t.Errorf("%d dead-man timers armed", timers)
	}
	if _, err := h.e.Confirm("d1", "alice"); !errors.Is(err, ErrNotPending) {
		t.Errorf("Confirm of a boot deployment: %v", err)
	}
	next := switchReq("d2")
	next.Action = ActionBuild
	wantOutcome(t, h.submit(next).result(), journal.StateBuilt)
}

func TestBootModeFailureRestoresBootDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.script(h.new, switchScript{Code: 1})
	req := switchReq("d1")
	req.Action = ActionBoot
	res := h.submit(req).result()
	wantOutcome(t, res, journal.StateRolledBack, "exited 1", "previous boot default is restored")
	want := []string{"start-switch panther-switch-d1 " + h.new + " boot", "start-switch panther-rollback-d1 " + h.old + " boot"}
	if got := h.act.callsWith("start-switch"); !slices.Equal(got, want) {
		t.Errorf("switches:\n got %q\nwant %q", got, want)
	}
	if gens, _ := h.nix.Generations(context.Background(), h.opts.Profile); gens[len(gens)-1].Path != h.old {
		t.Errorf("profile points at %s", gens[len(gens)-1].Path)
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	live := h.submit(req)
	live.awaiting()
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	live.result()

	// A late subscriber sees the whole history through the result.
	late := h.watch("d1")
	late.result()
	if got, want := late.phases(), live.phases(); !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("late watcher phases:\n got %q\nwant %q", got, want)
	}
	if len(late.seen) != len(live.seen) {
		t.Errorf("late watcher saw %d events, the live one %d", len(late.seen), len(live.seen))
	}
	if !late.done {
		t.Error("late watcher not told the deployment is over")
	}

	if _, err := h.e.Watch("nosuch"); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Watch of an unknown deployment: %v", err)
	}

	// After a restart only the result is known.
	h.restart()
	w := h.watch("d1")
	res := w.result()
	if res.Outcome != journal.StateConfirmed || len(w.seen) != 1 {
		t.Errorf("watch after restart: %+v, %d events", *res, len(w.seen))
	}
}

func TestGenerations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = 5 * time.Second
	h.deployAwaiting(req)
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	third := storePath(t, filepath.Dir(h.new), "cccc-nixos-system-yoga-25.05", "25.05.3")
	h.nix.scriptBuild(testRef, testHost, third)
	wantOutcome(t, h.submit(switchReq("d2")).result(), journal.StateRolledBack, "not confirmed")

	gens, err := h.e.Generations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Number  int64
		Current bool
		Path    string
		Version string
		ID      string
		Result  string
	}
	// d2 was rolled back before its confirm: it made no generation.
	want := []row{
		{2, true, h.new, "24.11.2", "d1", "confirmed"},
		{1, false, h.old, "24.05.1", "", ""},
	}
	var got []row
	for _, g := range gens {
		got = append(got, row{g.Number, g.Current, g.Path, g.Version, g.DeploymentID, g.Result})
	}
	if !slices.Equal(got, want) {
		t.Errorf("generations:\n got %+v\nwant %+v", got, want)
	}

	deps, err := h.e.Deployments(1)
	if err != nil || len(deps) != 1 || deps[0].ID != "d2" {
		t.Errorf("Deployments(1) = %v, %v", deps, err)
	}
}

// TestServesOnlyItsFlakeHost: the agent builds and activates only its own
// flakeHost; a request for another host's configuration (a wrong
// tailnetName in the controller's inventory) is refused at once, for every
// action that names one, with nothing evaluated, built or recorded.
func TestServesOnlyItsFlakeHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, action := range []Action{ActionSwitch, ActionBuild, ActionDryActivate, ActionBoot} {
		t.Run(string(action), func(t *testing.T) {
			req := switchReq("wrong-" + string(action))
			req.Action = action
			req.FlakeAttr = "web1"
			_, err := h.e.Submit(context.Background(), req)
			var wrong *WrongFlakeHostError
			if !errors.Is(err, ErrWrongFlakeHost) || !errors.As(err, &wrong) {
				t.Fatalf("Submit: %v, want %v", err, ErrWrongFlakeHost)
			}
			if wrong.Requested != "web1" || wrong.Configured != testHost {
				t.Errorf("error names %q/%q, want web1/%s", wrong.Requested, wrong.Configured, testHost)
			}
			for _, s := range []string{"nixosConfigurations.web1", "nixosConfigurations." + testHost, "flakeHost", "tailnetName"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q does not name %q", err, s)
				}
			}
		})
	}
	if recs, _ := h.j.List(); len(recs) != 0 {
		t.Errorf("refused requests left %d records", len(recs))
	}
	h.nix.mu.Lock()
	calls := slices.Clone(h.nix.calls)
	h.nix.mu.Unlock()
	if len(calls) != 0 {
		t.Errorf("refused requests ran nix: %q", calls)
	}
	if h.current() != h.old {
		t.Errorf("current system = %s, want %s", h.current(), h.old)
	}
	// The agent's own attribute is served.
	req := switchReq("own")
	req.Action = ActionBuild
	wantOutcome(t, h.submit(req).result(), journal.StateBuilt)
}

// TestFlakeHostOtherThanHostName: a host whose flakeHost differs from its
// host name serves that attribute, and only that one.
func TestFlakeHostOtherThanHostName(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t)
	h.opts.FlakeHost = "web1"
	h.nix.scriptBuild(testRef, "web1", h.new)
	h.nix.seed(h.old)
	h.link(h.old)
	h.start()
	req := switchReq("own-name")
	req.Action = ActionBuild
	if _, err := h.e.Submit(context.Background(), req); !errors.Is(err, ErrWrongFlakeHost) {
		t.Fatalf("Submit %s: %v, want %v", testHost, err, ErrWrongFlakeHost)
	}
	req = switchReq("flake-host")
	req.Action = ActionBuild
	req.FlakeAttr = "web1"
	wantOutcome(t, h.submit(req).result(), journal.StateBuilt)
}
