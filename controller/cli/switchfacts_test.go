package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pantheros/panther/controller/inventory"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// What the agent judged of switch-to-configuration reaches the person: the
// summary and the prompt say what needs a reboot and what a switch cannot
// do, a reboot-required result has its own exit code, and --force is signed.

func TestRebootRequiredExitCode(t *testing.T) {
	t.Parallel()
	res := &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_REBOOT_REQUIRED, Message: "not activated"}
	if got := exitFor(res); got != ExitRebootRequired {
		t.Errorf("exitFor = %d, want %d", got, ExitRebootRequired)
	}
	code, what := hostOutcome(&hostRun{result: res})
	if code != ExitRebootRequired || !strings.Contains(what, "NOT activated") || !strings.Contains(what, "reboot required") {
		t.Errorf("hostOutcome = %d %q", code, what)
	}
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	err := c.finishBatch([]*hostRun{{host: inventory.Host{Name: "alpha"}, result: res}}, &deployOpts{})
	if ee, ok := err.(*exitError); !ok || ee.code != ExitRebootRequired {
		t.Errorf("finishBatch = %v, want exit %d", err, ExitRebootRequired)
	}
	// A worse outcome on another host wins.
	err = c.finishBatch([]*hostRun{{host: inventory.Host{Name: "alpha"}, result: res},
		{host: inventory.Host{Name: "beta"}, result: &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_ROLLED_BACK}}}, &deployOpts{})
	if ee, ok := err.(*exitError); !ok || ee.code != ExitRolledBack {
		t.Errorf("finishBatch = %v, want exit %d", err, ExitRolledBack)
	}
}

func TestSummaryShowsSwitchFacts(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	r := &reporter{c: c, host: "alpha"}
	r.event(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Summary{Summary: &agentv1.Summary{
		NewStorePath: "/nix/store/new", WouldStop: []string{"panther-agent.service"}, WouldNotStop: []string{"keep.service"},
		WouldRestartSystemd: true, RebootRequired: []string{"kernel", "initrd"},
		NotActivatable: "its switch inhibitors refused a live switch", StopsAgent: "dry-activate would stop panther-agent.service",
	}}})
	r.event(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Result{Result: &agentv1.Result{
		Outcome: agentv1.Outcome_OUTCOME_CONFIRMED, RebootRequired: []string{"kernel"}, PreviouslyFailedUnits: []string{"old.service"},
	}}})
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
	runs := []*hostRun{
		{host: inventory.Host{Name: "a"}, summary: &agentv1.Summary{NotActivatable: "dry-activate exited 100"}},
		{host: inventory.Host{Name: "b"}, summary: &agentv1.Summary{RebootRequired: []string{"kernel"}}},
		{host: inventory.Host{Name: "c"}, summary: &agentv1.Summary{StopsAgent: "the new system has no panther-agent.service"}},
		{host: inventory.Host{Name: "d"}, summary: &agentv1.Summary{}},
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
	b := &batch{o: &deployOpts{force: true}}
	in := b.intent(&hostRun{host: inventory.Host{Name: "a"}}, agentv1.Action_ACTION_SWITCH, "/nix/store/x")
	if !in.Force {
		t.Error("--force is not in the intent")
	}
}
