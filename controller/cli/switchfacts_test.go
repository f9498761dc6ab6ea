package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/rollout"
)

// What the agent judged of switch-to-configuration reaches the person: the
// summary and the prompt say what needs a reboot and what a switch cannot
// do, a reboot-required result has its own exit code, and --force is signed.

func TestRebootRequiredExitCode(t *testing.T) {
	t.Parallel()
	res := &rollout.Result{Outcome: rollout.OutcomeRebootRequired, Message: "not activated"}
	if got := exitCodes[rollout.OutcomeVerdict(res.Outcome)]; got != ExitRebootRequired {
		t.Errorf("exit code = %d, want %d", got, ExitRebootRequired)
	}
	code, what := hostOutcome(&rollout.HostReport{Result: res})
	if code != ExitRebootRequired || !strings.Contains(what, "NOT activated") || !strings.Contains(what, "reboot required") {
		t.Errorf("hostOutcome = %d %q", code, what)
	}
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	err := c.finishBatch(&rollout.Report{Hosts: []*rollout.HostReport{{Host: rollout.Host{Name: "alpha"}, Result: res}}}, nil)
	if ee, ok := err.(*exitError); !ok || ee.code != ExitRebootRequired {
		t.Errorf("finishBatch = %v, want exit %d", err, ExitRebootRequired)
	}
	// A worse outcome on another host wins.
	err = c.finishBatch(&rollout.Report{Hosts: []*rollout.HostReport{{Host: rollout.Host{Name: "alpha"}, Result: res},
		{Host: rollout.Host{Name: "beta"}, Result: &rollout.Result{Outcome: rollout.OutcomeRolledBack}}}}, nil)
	if ee, ok := err.(*exitError); !ok || ee.code != ExitRolledBack {
		t.Errorf("finishBatch = %v, want exit %d", err, ExitRolledBack)
	}
}

func TestSummaryShowsSwitchFacts(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	r := &reporter{c: c, host: "alpha"}
	r.event(rollout.Event{Kind: rollout.EventSummary, Summary: &rollout.Summary{
		NewStorePath: "/nix/store/new", WouldStop: []string{"panther-agent.service"}, WouldNotStop: []string{"keep.service"},
		WouldRestartSystemd: true, RebootRequired: []string{"kernel", "initrd"},
		NotActivatable: "its switch inhibitors refused a live switch", StopsAgent: "dry-activate would stop panther-agent.service",
	}})
	r.event(rollout.Event{Kind: rollout.EventResult, Result: &rollout.Result{
		Outcome: rollout.OutcomeConfirmed, RebootRequired: []string{"kernel"}, PreviouslyFailedUnits: []string{"old.service"},
	}})
	for _, want := range []string{
		"would NOT stop (changed): keep.service", "would restart systemd",
		"reboot required: the new kernel, initrd differ", "cannot be activated live (its switch inhibitors refused", "--boot",
		"dry-activate would stop panther-agent.service: a switch is refused unless --force",
		"failed before the switch already (not held against it): old.service", "reboot required: the new kernel take effect",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPromptNotes(t *testing.T) {
	t.Parallel()
	runs := []*rollout.HostReport{
		{Host: rollout.Host{Name: "a"}, Summary: &rollout.Summary{NotActivatable: "dry-activate exited 100"}},
		{Host: rollout.Host{Name: "b"}, Summary: &rollout.Summary{RebootRequired: []string{"kernel"}}},
		{Host: rollout.Host{Name: "c"}, Summary: &rollout.Summary{StopsAgent: "the new system has no panther-agent.service"}},
		{Host: rollout.Host{Name: "d"}, Summary: &rollout.Summary{}},
	}
	notes := strings.Join(rebootNotes(runs, false), "\n")
	for _, want := range []string{"a: cannot be activated live (dry-activate exited 100): it only becomes the boot default",
		"b: reboot required afterwards: new kernel", "c: the new system has no panther-agent.service: refused unless --force"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "d:") {
		t.Errorf("a host without notes got one:\n%s", notes)
	}
	if got := rebootNotes(runs[:2], true); len(got) != 0 {
		t.Errorf("--boot notes = %q, want none (it asks for a reboot anyway)", got)
	}
}

func TestForceIsInTheSignedIntent(t *testing.T) {
	t.Parallel()
	o := &deployOpts{force: true}
	if !o.rolloutOptions().Force {
		t.Error("--force is not in the core's options")
	}
	in := client.IntentToProto("a", rollout.Intent{Action: rollout.ActionSwitch, Force: true})
	if !in.GetForce() {
		t.Error("--force is not in the signed intent")
	}
}
