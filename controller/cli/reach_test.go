package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/rollout"
)

// TestDetachNeedsNoConfirm: --detach alone is a usage error (a detached
// pantherctl cannot confirm), for deploy and rollback alike.
func TestDetachNeedsNoConfirm(t *testing.T) {
	for _, args := range [][]string{
		{"deploy", "alpha", "--yes", "--detach"},
		{"rollback", "alpha", "--rollback", "--yes", "--detach"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		if code != ExitUsage || !strings.Contains(errb.String(), "--detach goes with --no-confirm") {
			t.Errorf("%v: exit %d, stderr %q; want %d and the reason", args, code, errb.String(), ExitUsage)
		}
	}
}

// TestDeployHelpSaysWhenTheWindowStarts: --help says the window counts
// from the end of the health checks, where the confirm comes from, and
// what --no-confirm and --detach do.
func TestDeployHelpSaysWhenTheWindowStarts(t *testing.T) {
	var out bytes.Buffer
	Run(context.Background(), []string{"deploy", "--help"}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard})
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"counted from the end of the health checks (after the switch has ended)",
		"brand-new, ephemeral tailnet node",
		"--no-confirm waits for that rollback and exits 4",
		"--detach",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("deploy --help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestUnreachedOneLine: a host that could not be reached from a new node
// and rolled back ends with exit 4 and one line saying so.
func TestUnreachedOneLine(t *testing.T) {
	hr := &rollout.HostReport{Host: rollout.Host{Name: "alpha"}, Unreached: "no answer in time",
		Result: &rollout.Result{Outcome: rollout.OutcomeRolledBack, Message: "not confirmed within 15s"}}
	code, what := hostOutcome(hr)
	want := "could not be reached from a new tailnet node after the switch (no answer in time), and was rolled back: not confirmed within 15s"
	if code != ExitRolledBack || what != want {
		t.Errorf("hostOutcome = %d %q, want %d %q", code, what, ExitRolledBack, want)
	}
	hr.Unreached = ""
	if _, what := hostOutcome(hr); what != "rolled back (not confirmed within 15s)" {
		t.Errorf("a plain rollback reads %q", what)
	}
}

// TestFreshNodeLifecycle: no confirm node with --via system; closing one
// that never started neither hangs nor leaves anything behind.
func TestFreshNodeLifecycle(t *testing.T) {
	c := newCLI(IO{})
	c.g.via = "system"
	if f := c.newFreshNode(); f != nil {
		t.Fatalf("--via system made a confirm node")
	}
	var nilNode *freshNode
	nilNode.start()
	nilNode.close()
	c.g.via = "tsnet"
	f := c.newFreshNode()
	done := make(chan struct{})
	go func() { f.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a confirm node that never started hangs")
	}
	if f.dir != "" || f.node != nil {
		t.Errorf("a never started node has state: %q %v", f.dir, f.node)
	}
}
