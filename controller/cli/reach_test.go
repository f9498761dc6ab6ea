package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/controller/inventory"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
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

// eventStream replays events, then io.EOF.
type eventStream struct{ evs []*agentv1.DeployEvent }

func (s *eventStream) Recv() (*agentv1.DeployEvent, error) {
	if len(s.evs) == 0 {
		return nil, io.EOF
	}
	ev := s.evs[0]
	s.evs = s.evs[1:]
	return ev, nil
}

// TestConfirmNodeStartsWhenHealthStarts: the confirm node is started on
// the health phase's start — after the switch ended, so its key cannot
// reach a host before the switch cut it off — not on the switch's.
func TestConfirmNodeStartsWhenHealthStarts(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var order []string
	ev := func(ms int, e *agentv1.DeployEvent) *agentv1.DeployEvent {
		e.Time = timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))
		return e
	}
	phase := func(ms int, p agentv1.Phase) *agentv1.DeployEvent {
		return ev(ms, &agentv1.DeployEvent{Event: &agentv1.DeployEvent_PhaseStarted{PhaseStarted: &agentv1.PhaseStarted{Phase: p}}})
	}
	st := &eventStream{evs: []*agentv1.DeployEvent{
		phase(0, agentv1.Phase_PHASE_SWITCH),
		ev(10, &agentv1.DeployEvent{Event: &agentv1.DeployEvent_Log{Log: &agentv1.LogLine{Phase: agentv1.Phase_PHASE_SWITCH, Line: "switch-to-configuration switch exited 0: ok"}}}),
		phase(20, agentv1.Phase_PHASE_HEALTH),
		ev(30, &agentv1.DeployEvent{Event: &agentv1.DeployEvent_AwaitingConfirmation{AwaitingConfirmation: &agentv1.AwaitingConfirmation{Deadline: timestamppb.New(t0.Add(time.Minute))}}}),
	}}
	c := newCLI(IO{Stdout: io.Discard, Stderr: io.Discard})
	r := &reporter{c: c, host: "alpha", logw: &recorder{lines: &order}}
	r.onHealth = func() { order = append(order, "START CONFIRM NODE") }
	f := &followed{}
	if err := r.follow(st, f); err != nil || f.awaiting == nil {
		t.Fatalf("follow: %v, awaiting %v", err, f.awaiting)
	}
	got := strings.Join(order, "\n")
	i, j, k := strings.Index(got, "exited 0"), strings.Index(got, "START CONFIRM NODE"), strings.Index(got, "==> health")
	if i < 0 || j < 0 || k < 0 || !(i < k && k < j) || strings.Count(got, "START CONFIRM NODE") != 1 {
		t.Errorf("the confirm node must start once, after the switch's exit and as health starts:\n%s", got)
	}
}

type recorder struct{ lines *[]string }

func (w *recorder) Write(p []byte) (int, error) {
	*w.lines = append(*w.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestUnreachedOneLine: a host that could not be reached from a new node
// and rolled back ends with exit 4 and one line saying so.
func TestUnreachedOneLine(t *testing.T) {
	hr := &hostRun{host: inventory.Host{Name: "alpha"}, r: &reporter{unreached: "no answer in time"},
		result: &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_ROLLED_BACK, Message: "not confirmed within 15s"}}
	code, what := hostOutcome(hr)
	want := "could not be reached from a new tailnet node after the switch (no answer in time), and was rolled back: not confirmed within 15s"
	if code != ExitRolledBack || what != want {
		t.Errorf("hostOutcome = %d %q, want %d %q", code, what, ExitRolledBack, want)
	}
	hr.r.unreached = ""
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
