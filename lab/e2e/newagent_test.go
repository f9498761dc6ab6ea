package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/cli"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestNewAgent: the new agent is inside the proof, on one NixOS-like host
// whose agent unit lives in its system (InitialGeneration), one deploy
// after the other:
//   - a new system whose agent refuses its own configuration (check-config
//     of the new agent binary with the new unit's arguments) is refused in
//     dry-activate: exit 3, the agent's message shown, nothing changed (the
//     running system, the profile, the boot default, the agent process);
//   - a new system that changes the agent's config: inside the window the
//     agent is a new process running the new ExecStart, which resumed the
//     deployment and accepted the confirmation: exit 0, and no restart
//     after the confirmation;
//   - a new agent that starts but never gets onto the tailnet: nothing can
//     confirm, the new agent's own deadline rolls back and it restarts
//     into the previous agent: exit 4, the previous system running, the
//     profile and the boot default on it.
func TestNewAgent(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{
		Hosts: map[string]string{"alpha": nixtest.Good}, InitialGeneration: true, ConfirmTimeout: 30 * time.Second,
	})
	h := f.Hosts["alpha"]
	f.WaitReachable(t, "alpha", time.Minute)
	deploy := func(t *testing.T, want int, args ...string) (fleettest.Result, string) {
		t.Helper()
		r := f.MustCtl(want, append([]string{"deploy", "alpha", "--json", "--yes", "--flake", f.Flake}, args...)...)
		id := fleettest.DeploymentIDFromJSON(r.Stdout)
		if id == "" {
			t.Fatalf("no deployment id in the --json output:\n%s", r)
		}
		return r, id
	}
	type state struct {
		system, boot string
		gen          int64
		pid          int
	}
	now := func(t *testing.T) state {
		t.Helper()
		return state{h.CurrentSystem(t), h.BootDefault(t), h.CurrentGeneration(t).Number, h.AgentPID(t)}
	}
	cmdline := func(t *testing.T, pid int) string {
		t.Helper()
		out, err := h.SB.Exec(context.Background(), "cat", fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("cmdline of %d: %v", pid, err)
		}
		return strings.ReplaceAll(strings.TrimRight(string(out), "\x00"), "\x00", " ")
	}

	t.Run("the new agent refuses its config", func(t *testing.T) {
		before := now(t)
		f.SetVariant("alpha", nixtest.AgentRefused)
		r, id := deploy(t, cli.ExitFailed)
		if !strings.Contains(r.Stdout+r.Stderr, nixtest.AgentRefusedMessage) {
			t.Errorf("pantherctl does not show the new agent's message %q:\n%s", nixtest.AgentRefusedMessage, r)
		}
		rec := h.JournalRecord(t, id)
		if rec.State != journal.StateFailed || rec.Phase != "dry-activate" || !strings.Contains(rec.Reason, nixtest.AgentRefusedMessage) {
			t.Errorf("record %s in %s (%s), want failed in dry-activate with the agent's message", rec.State, rec.Phase, rec.Reason)
		}
		if after := now(t); after != before {
			t.Errorf("the host changed: %+v, was %+v", after, before)
		}
		if log := h.DeploymentLog(t, id); strings.Contains(log, "[switch] started") {
			t.Errorf("switched although the new agent refused:\n%s", log)
		}
	})

	var changed state
	t.Run("the new agent confirms", func(t *testing.T) {
		before := now(t)
		if c := cmdline(t, before.pid); strings.Contains(c, "--log-level info") {
			t.Fatalf("the agent runs %q already", c)
		}
		f.SetVariant("alpha", nixtest.AgentChanged)
		r, id := deploy(t, cli.ExitOK)
		changed = now(t)
		rec := h.JournalRecord(t, id)
		if rec.State != journal.StateConfirmed || rec.NewPath != changed.system {
			t.Fatalf("record %s (%s) of %s, want confirmed, running %s\n%s", rec.State, rec.Reason, rec.NewPath, changed.system, r)
		}
		if changed.pid == before.pid || changed.pid == 0 {
			t.Fatalf("agent pid %d, was %d: want a new agent process", changed.pid, before.pid)
		}
		if c := cmdline(t, changed.pid); !strings.Contains(c, "--log-level info") {
			t.Errorf("the new agent runs %q, want the new unit's ExecStart (--log-level info)", c)
		}
		if rec.NewAgent == nil || rec.NewAgent.ResumedBy == "" || rec.NewAgent.ResumedBy == rec.NewAgent.HandedOverBy ||
			!strings.Contains(strings.Join(rec.NewAgent.ExecStart, " "), "--log-level info") {
			t.Errorf("record's new agent %+v: want handed over to --log-level info and resumed by another agent", rec.NewAgent)
		}
		// The agent process that resumed in the window is the one running
		// now: it accepted the confirmation, nothing restarted after it.
		log := h.DeploymentLog(t, id)
		resumed := "the new agent (pid " + strconv.Itoa(changed.pid) + ") resumed the deployment"
		for _, want := range []string{"restarting into the new agent", resumed, "[result] confirmed"} {
			if !strings.Contains(log, want) {
				t.Errorf("the deployment log lacks %q:\n%s", want, log)
			}
		}
		if i, j := strings.Index(log, resumed), strings.Index(log, "[confirm] confirmed by"); i < 0 || j < i {
			t.Errorf("not confirmed after the new agent resumed:\n%s", log)
		}
		time.Sleep(2 * time.Second)
		if pid := h.AgentPID(t); pid != changed.pid {
			t.Errorf("the agent restarted after the confirmation (pid %d, was %d)", pid, changed.pid)
		}
		if changed.boot != changed.system || changed.gen <= before.gen {
			t.Errorf("after the confirm: boot default %s, generation %d (was %d); want %s, a new generation", changed.boot, changed.gen, before.gen, changed.system)
		}
	})
	if changed.system == "" {
		t.Fatal("no confirmed system with the changed agent")
	}

	t.Run("the new agent never joins the tailnet", func(t *testing.T) {
		f.SetVariant("alpha", nixtest.AgentUnreachable)
		r, id := deploy(t, cli.ExitRolledBack, "--confirm-timeout", "10s")
		rec := h.JournalRecord(t, id)
		if rec.State != journal.StateRolledBack || !strings.Contains(rec.Reason, "not confirmed within") {
			t.Errorf("record %s (%s), want rolled back at the deadline\n%s", rec.State, rec.Reason, r)
		}
		if rec.NewAgent == nil || !strings.Contains(strings.Join(rec.NewAgent.ExecStart, " "), "127.0.0.1:9") {
			t.Errorf("record's new agent %+v: want handed over to the unreachable agent", rec.NewAgent)
		}
		if log := h.DeploymentLog(t, id); strings.Contains(log, "[confirm] confirmed by") {
			t.Errorf("confirmed:\n%s", log)
		}
		after := now(t)
		if after.system != changed.system || after.boot != changed.system {
			t.Errorf("after the rollback: system %s, boot default %s; want %s", after.system, after.boot, changed.system)
		}
		if c := cmdline(t, after.pid); strings.Contains(c, "127.0.0.1:9") || !strings.Contains(c, "--log-level info") {
			t.Errorf("after the rollback the agent runs %q, want the restored system's agent", c)
		}
	})
}
