package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// fakeAgent is AgentSelf: a settable command line, scripted check-config
// refusals and counted restarts.
type fakeAgent struct {
	mu         sync.Mutex
	exec       []string
	refuse     map[string]string // binary -> check-config's message
	checked    [][]string
	restarts   int
	restartErr error
}

func (a *fakeAgent) Exec() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exec
}

func (a *fakeAgent) setExec(exec []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.exec = exec
}

func (a *fakeAgent) CheckConfig(ctx context.Context, exec []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checked = append(a.checked, exec)
	if msg, ok := a.refuse[exec[0]]; ok {
		return errors.New(msg)
	}
	return nil
}

func (a *fakeAgent) Restart(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.restarts++
	return a.restartErr
}

func (a *fakeAgent) restartCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.restarts
}

// startAgent is harness.start with a as the engine's AgentSelf.
func (h *harness) startAgent(a AgentSelf) *Engine {
	h.t.Helper()
	return h.startWith(func(d *Deps) {
		d.Activator = h.act
		d.Agent = a
	})
}

// restartAgent is harness.restart with a as the new engine's AgentSelf.
func (h *harness) restartAgent(a AgentSelf) *Engine {
	h.t.Helper()
	h.e.Close()
	return h.startAgent(a)
}

const (
	oldAgentBin = "/nix/store/aaaa-panther-agent-1/bin/panther-agent"
	newAgentBin = "/nix/store/bbbb-panther-agent-2/bin/panther-agent"
	oldAgentCfg = "/nix/store/aaaa-panther-agent.json"
	newAgentCfg = "/nix/store/bbbb-panther-agent.json"
)

// writeAgentUnit installs panther-agent.service running bin with cfg in a
// fake toplevel.
func writeAgentUnit(t *testing.T, toplevel, bin, cfg string) []string {
	t.Helper()
	dir := filepath.Join(toplevel, "etc/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := "[Unit]\nDescription=panther agent\nX-RestartIfChanged=false\n\n[Service]\nExecStart=" + bin + " run --config " + cfg + " --log-level info\nRestart=always\n"
	if err := os.WriteFile(filepath.Join(dir, "panther-agent.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{bin, "run", "--config", cfg, "--log-level", "info"}
}

// newAgentHarness is a host running h.old with the old agent, deploying
// h.new with a new agent package and config.
func newAgentHarness(t *testing.T) (*harness, *fakeAgent, []string, []string) {
	t.Helper()
	h := newBareHarness(t)
	oldExec := writeAgentUnit(t, h.old, oldAgentBin, oldAgentCfg)
	newExec := writeAgentUnit(t, h.new, newAgentBin, newAgentCfg)
	a := &fakeAgent{exec: oldExec, refuse: map[string]string{}}
	h.nix.seed(h.old)
	h.link(h.old)
	h.startAgent(a)
	return h, a, oldExec, newExec
}

// TestNewAgentRefusesItsConfig: the new system's agent refusing its own
// configuration fails the deployment in dry-activate with its message,
// before anything changed.
func TestNewAgentRefusesItsConfig(t *testing.T) {
	h, a, _, newExec := newAgentHarness(t)
	msg := `panther-agent: config: criticalUnits: "nginx" is not a unit name (nginx.service?)`
	a.refuse[newAgentBin] = msg
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateFailed, msg, "refuses its configuration", "nothing was changed")
	if res.FailedPhase != PhaseDryActivate {
		t.Errorf("failed phase %q, want %q", res.FailedPhase, PhaseDryActivate)
	}
	if len(a.checked) != 1 || !slices.Equal(a.checked[0], newExec) {
		t.Errorf("check-config ran %v, want once with %v", a.checked, newExec)
	}
	if c := h.act.callsWith("start-switch"); len(c) != 0 {
		t.Errorf("switched although the new agent refused: %v", c)
	}
	if c := h.nix.callsWith("set-profile"); len(c) != 0 {
		t.Errorf("profile set although the new agent refused: %v", c)
	}
	if h.current() != h.old {
		t.Errorf("current system %s, want %s", h.current(), h.old)
	}
	if a.restartCount() != 0 {
		t.Errorf("restarted the agent %d times", a.restartCount())
	}
}

// TestNewAgentRefusesDryActivateOnly: a dry-activate request reports the
// refusal too.
func TestNewAgentRefusesDryActivateOnly(t *testing.T) {
	h, a, _, _ := newAgentHarness(t)
	a.refuse[newAgentBin] = "panther-agent: config: confirmTimeout 2h is above maxConfirmTimeout 15m"
	req := switchReq("d1")
	req.Action = ActionDryActivate
	wantOutcome(t, h.submit(req).result(), journal.StateFailed, "above maxConfirmTimeout")
}

// events reads a subscription until it ends (with or without a result).
func events(t *testing.T, sub *Subscription) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var all []Event
	for {
		evs, done, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("events: %v; so far:\n%s", err, dumpEvents(all))
		}
		all = append(all, evs...)
		if done {
			return all
		}
	}
}

// TestNewAgentHandOver: a switch that changes the agent's unit is handed
// over to the new agent inside the window: the old agent asks for its
// restart, ends its stream without opening the window to confirmations and
// refuses the confirmation; the new agent resumes, and only it confirms.
func TestNewAgentHandOver(t *testing.T) {
	h, a, _, newExec := newAgentHarness(t)
	h.opts.DefaultConfirm = 5 * time.Second
	h.restartAgent(a)
	sub, err := h.e.Submit(context.Background(), switchReq("d1"))
	if err != nil {
		t.Fatal(err)
	}
	evs := events(t, sub)
	for _, ev := range evs {
		if ev.Kind == EventAwaiting || ev.Kind == EventResult {
			t.Fatalf("the old agent opened the window or ended the deployment:\n%s", dumpEvents(evs))
		}
	}
	if a.restartCount() != 1 {
		t.Fatalf("restarts = %d, want 1", a.restartCount())
	}
	rec := h.record("d1")
	if rec.State != journal.StateAwaiting || rec.NewAgent == nil || !slices.Equal(rec.NewAgent.ExecStart, newExec) || rec.NewAgent.HandedOverBy == "" {
		t.Fatalf("record: state %s, newAgent %+v; want awaiting the new agent %v", rec.State, rec.NewAgent, newExec)
	}
	if h.current() != h.new {
		t.Fatalf("current system %s, want %s", h.current(), h.new)
	}
	// A confirmation reaching the old agent is refused.
	if _, err := h.e.Confirm("d1", "alice"); !errors.Is(err, ErrNewAgentPending) {
		t.Fatalf("old agent's Confirm: %v, want %v", err, ErrNewAgentPending)
	}
	// systemd restarts the unit: the new agent resumes and confirms.
	a.setExec(newExec)
	h.restartAgent(a)
	w := h.watch("d1")
	w.awaiting()
	if !w.hasLine(PhaseConfirm, fmt.Sprintf("the new agent (pid %d) resumed the deployment: it accepts the confirmation", os.Getpid())) {
		t.Errorf("no line about the new agent resuming:\n%s", dumpEvents(w.seen))
	}
	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatalf("new agent's Confirm: %v", err)
	}
	wantOutcome(t, res, journal.StateConfirmed)
	if rec := h.record("d1"); rec.NewAgent.ResumedBy == "" || rec.NewAgent.ResumedBy == rec.NewAgent.HandedOverBy {
		t.Errorf("newAgent %+v: want resumed by another agent", rec.NewAgent)
	}
	if a.restartCount() != 1 {
		t.Errorf("restarts = %d after the confirmation, want 1 (one mechanism)", a.restartCount())
	}
}

// TestNewAgentNeverComesUp: when what restarts is not the new agent (the
// unit still runs the old command line), it does not confirm, and the
// deadline rolls back; the agent then matches the restored system.
func TestNewAgentNeverComesUp(t *testing.T) {
	h, a, _, _ := newAgentHarness(t)
	h.submit(switchReq("d1"))
	waitFor(t, "the hand-over", func() bool { return a.restartCount() == 1 })
	h.restartAgent(a) // same command line: the old agent again
	w := h.watch("d1")
	if _, err := h.e.Confirm("d1", "alice"); !errors.Is(err, ErrNewAgentPending) || !strings.Contains(err.Error(), newAgentBin) {
		t.Fatalf("Confirm by an agent running the old command line: %v, want %v naming the new agent", err, ErrNewAgentPending)
	}
	wantOutcome(t, w.result(), journal.StateRolledBack, "not confirmed within")
	if h.current() != h.old {
		t.Errorf("current system %s, want %s", h.current(), h.old)
	}
	if a.restartCount() != 1 {
		t.Errorf("restarts = %d, want 1: the old agent already matches the restored system", a.restartCount())
	}
}

// TestNewAgentRollsBackIntoThePreviousAgent: a new agent that rolls back
// restarts into the previous system's agent once the rollback is done.
func TestNewAgentRollsBackIntoThePreviousAgent(t *testing.T) {
	h, a, _, newExec := newAgentHarness(t)
	h.submit(switchReq("d1"))
	waitFor(t, "the hand-over", func() bool { return a.restartCount() == 1 })
	a.setExec(newExec)
	h.restartAgent(a)
	wantOutcome(t, h.watch("d1").result(), journal.StateRolledBack)
	waitFor(t, "the restart into the previous agent", func() bool { return a.restartCount() == 2 })
}

// TestNewAgentRestartFails: when systemd will not restart the agent, the
// deployment rolls back at once.
func TestNewAgentRestartFails(t *testing.T) {
	h, a, _, _ := newAgentHarness(t)
	a.restartErr = errFake
	wantOutcome(t, h.submit(switchReq("d1")).result(), journal.StateRolledBack, "could not restart into the new system's agent")
}

// TestNewAgentUnchanged: a switch that leaves the agent's unit as it is
// checks the agent's config and is confirmed by the same agent.
func TestNewAgentUnchanged(t *testing.T) {
	h := newBareHarness(t)
	exec := writeAgentUnit(t, h.old, oldAgentBin, oldAgentCfg)
	writeAgentUnit(t, h.new, oldAgentBin, oldAgentCfg)
	a := &fakeAgent{exec: exec}
	h.nix.seed(h.old)
	h.link(h.old)
	h.startAgent(a)
	h.deployAwaiting(switchReq("d1"))
	res, err := h.e.Confirm("d1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, res, journal.StateConfirmed)
	if a.restartCount() != 0 || len(a.checked) != 1 {
		t.Errorf("restarts %d, checks %v: want no restart and one check", a.restartCount(), a.checked)
	}
	if h.record("d1").NewAgent != nil {
		t.Errorf("record names a new agent")
	}
}

// TestNewAgentNotUnderSystemd: an agent that does not run as its unit (no
// command line) checks the new config but never hands over.
func TestNewAgentNotUnderSystemd(t *testing.T) {
	h := newBareHarness(t)
	writeAgentUnit(t, h.old, oldAgentBin, oldAgentCfg)
	writeAgentUnit(t, h.new, newAgentBin, newAgentCfg)
	a := &fakeAgent{}
	h.nix.seed(h.old)
	h.link(h.old)
	h.startAgent(a)
	h.deployAwaiting(switchReq("d1"))
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	if a.restartCount() != 0 || len(a.checked) != 1 {
		t.Errorf("restarts %d, checks %v", a.restartCount(), a.checked)
	}
}

// TestNewAgentRestartedDuringTheSwitch: an agent restarted while the switch
// ran (by the switch, a crash) that already runs the new unit's command line
// is the new agent: it finishes the deployment and confirms it without
// another restart. One still running the old command line hands over.
func TestNewAgentRestartedDuringTheSwitch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		alreadyNew bool
	}{
		{"restarted into the new agent", true},
		{"restarted into the old agent", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, a, _, newExec := newAgentHarness(t)
			hold := make(chan struct{})
			h.act.script(h.new, switchScript{Hold: hold})
			req := switchReq("d1")
			req.ConfirmTimeout = 5 * time.Second
			w := h.submit(req)
			w.phaseFinished(PhaseSwitch)
			h.e.Close()
			if tc.alreadyNew {
				a.setExec(newExec)
			}
			h.startAgent(a)
			w = h.watch("d1")
			close(hold)
			if !tc.alreadyNew {
				waitFor(t, "the hand-over", func() bool { return a.restartCount() == 1 })
				if _, err := h.e.Confirm("d1", "alice"); !errors.Is(err, ErrNewAgentPending) {
					t.Fatalf("Confirm by the agent that handed over: %v, want %v", err, ErrNewAgentPending)
				}
				return
			}
			w.awaiting()
			res, err := h.e.Confirm("d1", "alice")
			if err != nil {
				t.Fatal(err)
			}
			wantOutcome(t, res, journal.StateConfirmed)
			if a.restartCount() != 0 || h.record("d1").NewAgent != nil {
				t.Errorf("restarts %d, newAgent %+v: want neither", a.restartCount(), h.record("d1").NewAgent)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSplitExec(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "/nix/store/x/bin/panther-agent run --config /nix/store/y.json", []string{"/nix/store/x/bin/panther-agent", "run", "--config", "/nix/store/y.json"}},
		{"prefixes", "@-/bin/a run", []string{"/bin/a", "run"}},
		{"quotes", `/bin/a run '--critical-units' "a b" x\ y`, []string{"/bin/a", "run", "--critical-units", "a b", "x y"}},
		{"empty quotes", `/bin/a ''`, []string{"/bin/a", ""}},
		{"blanks", "  /bin/a \t run  ", []string{"/bin/a", "run"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitExec(tc.in)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("splitExec(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := splitExec(`/bin/a 'open`); err == nil {
		t.Error("an unterminated quote passed")
	}
}

// TestAgentUnitDropIns: a drop-in's ExecStart (after an empty one) wins.
func TestAgentUnitDropIns(t *testing.T) {
	top := t.TempDir()
	writeAgentUnit(t, top, oldAgentBin, oldAgentCfg)
	d := filepath.Join(top, "etc/systemd/system/panther-agent.service.d")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "overrides.conf"), []byte("[Service]\nExecStart=\nExecStart=/bin/other run\n"), 0o644)
	exec, _, err := agentUnit(top, "panther-agent.service")
	if err != nil || !slices.Equal(exec, []string{"/bin/other", "run"}) {
		t.Errorf("agentUnit = %q, %v", exec, err)
	}
	if exec, _, err := agentUnit(t.TempDir(), "panther-agent.service"); exec != nil || err != nil {
		t.Errorf("no unit: %q, %v", exec, err)
	}
}
