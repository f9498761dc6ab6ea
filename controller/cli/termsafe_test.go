package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/buildall"
	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/rollout"
)

// hostile is agent text that tries to drive the operator's terminal: set
// the clipboard (OSC 52), send a device control string, clear the screen
// with an 8-bit CSI (raw and as UTF-8), and rewrite the line above.
const hostile = "ok\x1b]52;c;cm0gLXJmIH4=\x07 \x1bP+q\x1b\\ \x9b2J \u009b2J\r\x1b[1Adone"

// assertNoTerminalCommands fails if out holds any byte a terminal acts on
// (everything below 0x20 but tab and newline, DEL, C1 controls, bytes that
// are not UTF-8).
func assertNoTerminalCommands(t *testing.T, what, out string) {
	t.Helper()
	if out == "" {
		t.Fatalf("%s: printed nothing", what)
	}
	for i, r := range out {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfffd {
			t.Fatalf("%s: control %U at %d reaches the terminal: %q", what, r, i, out)
		}
	}
}

func TestReporterEscapesAgentText(t *testing.T) {
	events := []rollout.Event{
		{Kind: rollout.EventLog, Line: hostile},
		{Kind: rollout.EventWarning, Line: hostile},
		{Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseSwitch, Error: hostile, Elapsed: time.Second},
		{Kind: rollout.EventHealth, Health: &rollout.HealthCheck{Name: hostile, Detail: hostile}},
		{Kind: rollout.EventSummary, Summary: &rollout.Summary{NewStorePath: hostile, NewVersion: hostile, WouldRestart: []string{hostile}}},
		{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeFailed, Message: hostile, RecoveryCommands: []string{hostile}}},
	}
	for _, ev := range events {
		var out, logw bytes.Buffer
		c := &CLI{io: IO{Stdout: &out}}
		r := &reporter{c: c, host: "alpha", logw: &logw}
		r.event(ev)
		assertNoTerminalCommands(t, "stdout", out.String())
		assertNoTerminalCommands(t, "controller log", logw.String())
		if n := strings.Count(out.String(), "alpha: "); n != strings.Count(out.String(), "\n") {
			t.Errorf("agent text split a line: %q", out.String())
		}
	}
}

func TestResultTableEscapesAgentText(t *testing.T) {
	var out, errw bytes.Buffer
	c := &CLI{io: IO{Stdout: &out, Stderr: &errw}}
	rep := &rollout.Report{Hosts: []*rollout.HostReport{{
		Host:   rollout.Host{Name: "alpha"},
		Result: &rollout.Result{Outcome: rollout.OutcomeFailed, Message: hostile},
	}}}
	err := c.finishBatch(rep, nil)
	assertNoTerminalCommands(t, "result table", out.String())
	if err == nil {
		t.Fatal("a failed host gave no error")
	}
	// The error reaches the terminal as pantherctl's last line.
	code := c.exit(err)
	assertNoTerminalCommands(t, "error line", errw.String())
	if code != ExitFailed {
		t.Errorf("exit code %d, want %d", code, ExitFailed)
	}
}

func TestStatusEscapesAgentText(t *testing.T) {
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	c.printStatus(&client.HostStatus{
		Host: hostile, AgentVersion: hostile, CurrentStorePath: hostile, NixosVersion: hostile,
		SystemState: hostile, FailedUnits: []string{hostile},
		Last: &client.Deployment{DeploymentID: hostile, Message: hostile},
	})
	assertNoTerminalCommands(t, "status", out.String())
}

func TestBuildAllEventEscapesAgentText(t *testing.T) {
	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	c.buildAllEvent(buildall.Event{Kind: buildall.Done, Host: "alpha", Path: hostile})
	c.buildAllEvent(buildall.Event{Kind: buildall.Failed, Host: "alpha", Err: errors.New(hostile)})
	assertNoTerminalCommands(t, "build-all", out.String())
	var sum bytes.Buffer
	buildall.Summary{Results: []buildall.HostResult{{Host: "alpha", Err: errors.New(hostile)}}}.WriteText(&sum)
	assertNoTerminalCommands(t, "build-all summary", sum.String())
}
