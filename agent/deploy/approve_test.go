package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// promptedReq is a switch that awaits approval after its dry-activate.
func promptedReq(id string, timeout time.Duration) Request {
	req := switchReq(id)
	req.AwaitApproval, req.ApprovalTimeout = true, timeout
	return req
}

func (w *watcher) awaitingApproval() *AwaitingApproval {
	w.t.Helper()
	return w.until("awaiting approval", func(ev Event) bool {
		if ev.Kind == EventResult {
			w.t.Fatalf("ended before awaiting approval: %+v; events:\n%s", *ev.Result, dumpEvents(w.seen))
		}
		return ev.Kind == EventAwaitingApproval
	}).Approval
}

// nothingSwitched checks that no switch unit ran and the host still runs
// h.old.
func (h *harness) nothingSwitched() {
	h.t.Helper()
	if got := h.act.callsWith("start-switch"); len(got) != 0 {
		h.t.Errorf("switch units started: %q", got)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		h.t.Errorf("profile changed: %q", got)
	}
	if cur := h.current(); cur != h.old {
		h.t.Errorf("current system %s, want %s", cur, h.old)
	}
}

// A prompted deploy is one deployment: one evaluation, one build, one
// dry-activate and one journal record, whether the answer comes before or
// after the Summary was read.
func TestApproveSwitchesTheSameDeployment(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", time.Minute))
	aw := w.awaitingApproval()
	if aw.NewPath != h.new {
		t.Fatalf("awaiting approval of %s, want %s", aw.NewPath, h.new)
	}
	if len(w.kinds(EventSummary)) != 1 {
		t.Fatalf("the Summary was not sent before awaiting approval; events:\n%s", dumpEvents(w.seen))
	}
	if rec := h.record("d1"); rec.State != journal.StateRunning || rec.Phase != string(PhaseApprove) || rec.ApprovalDeadline.IsZero() {
		t.Fatalf("record while awaiting approval: state %s phase %s deadline %v", rec.State, rec.Phase, rec.ApprovalDeadline)
	}
	h.nothingSwitched()
	if _, err := h.e.Submit(context.Background(), switchReq("d2")); !errors.Is(err, ErrBusy) {
		t.Errorf("a second deploy while awaiting approval: %v, want ErrBusy", err)
	}

	if err := h.e.Approve("d1", h.new, "alice"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	w.awaiting()
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	wantOutcome(t, w.result(), journal.StateConfirmed)

	if got := h.nix.callsWith("evaluate"); len(got) != 1 {
		t.Errorf("evaluations = %q, want 1", got)
	}
	if got := h.nix.callsWith("hosts"); len(got) != 0 {
		t.Errorf("host checks besides the evaluation: %q", got)
	}
	if got := h.nix.callsWith("build"); len(got) != 1 {
		t.Errorf("builds = %q, want 1", got)
	}
	if got := h.act.callsWith("dry-activate"); len(got) != 1 {
		t.Errorf("dry-activates = %q, want 1", got)
	}
	recs, err := h.j.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ApprovedBy != "alice" || !recs[0].AwaitApproval {
		t.Errorf("journal records = %d (%+v), want one approved by alice", len(recs), recs)
	}
	if h.current() != h.new {
		t.Errorf("current system %s, want %s", h.current(), h.new)
	}
}

// An Approve naming another store path than the dry-activated one is
// refused and the deployment keeps waiting; a second Approve after the
// decision is refused too.
func TestApproveWrongStorePathRefused(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", time.Minute))
	w.awaitingApproval()
	err := h.e.Approve("d1", h.old, "mallory")
	if !errors.Is(err, ErrApprovalPathMismatch) {
		t.Fatalf("Approve with the wrong path: %v, want ErrApprovalPathMismatch", err)
	}
	h.nothingSwitched()
	if err := h.e.Approve("d9", h.new, "alice"); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Approve of an unknown deployment: %v, want not found", err)
	}
	if err := h.e.Approve("d1", h.new, "alice"); err != nil {
		t.Fatalf("Approve with the right path after a refused one: %v", err)
	}
	w.awaiting()
	if err := h.e.Approve("d1", h.new, "alice"); !errors.Is(err, ErrNotAwaitingApproval) {
		t.Errorf("a second Approve: %v, want ErrNotAwaitingApproval", err)
	}
}

// Declining ends the deployment with nothing changed.
func TestDeclineChangesNothing(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", time.Minute))
	w.awaitingApproval()
	res, err := h.e.Decline("d1", "alice")
	if err != nil {
		t.Fatalf("Decline: %v", err)
	}
	wantOutcome(t, res, journal.StateNotApproved, "declined by alice", "nothing was changed")
	wantOutcome(t, w.result(), journal.StateNotApproved, "declined by alice")
	h.nothingSwitched()
	if err := h.e.Approve("d1", h.new, "alice"); !errors.Is(err, ErrNotAwaitingApproval) {
		t.Errorf("Approve after Decline: %v, want ErrNotAwaitingApproval", err)
	}
	// The lock is free again.
	h.submit(switchReq("d2")).awaiting()
}

// Nobody answering ends the deployment at its timeout, nothing changed.
func TestApprovalTimeout(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", 80*time.Millisecond))
	w.awaitingApproval()
	wantOutcome(t, w.result(), journal.StateNotApproved, "not approved within 80ms; nothing was changed")
	h.nothingSwitched()
	if err := h.e.Approve("d1", h.new, "alice"); !errors.Is(err, ErrNotAwaitingApproval) {
		t.Errorf("Approve after the timeout: %v, want ErrNotAwaitingApproval", err)
	}
}

// The caller going away (the controller died) does not end the wait: the
// deployment waits for its timeout, and a Watch can reattach and see it
// approved and switched.
func TestApprovalOutlivesTheCaller(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := h.e.Submit(ctx, promptedReq("d1", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	(&watcher{t: t, sub: sub}).awaitingApproval()
	cancel()
	time.Sleep(50 * time.Millisecond)
	if rec := h.record("d1"); rec.State != journal.StateRunning || rec.Phase != string(PhaseApprove) {
		t.Fatalf("after the caller left: state %s phase %s (%s), want still awaiting approval", rec.State, rec.Phase, rec.Reason)
	}
	w := h.watch("d1")
	w.awaitingApproval()
	if err := h.e.Approve("d1", h.new, "alice"); err != nil {
		t.Fatal(err)
	}
	w.awaiting()
}

// An agent restart while awaiting approval ends the deployment: nothing was
// changed, and it says so; the wait is not resumed.
func TestApprovalAgentRestart(t *testing.T) {
	for _, rebooted := range []bool{false, true} {
		name := map[bool]string{false: "agent restart", true: "reboot"}[rebooted]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.submit(promptedReq("d1", time.Minute)).awaitingApproval()
			h.e.Close()
			if rebooted {
				h.reboot()
			}
			h.start()
			res := h.watch("d1").result()
			what := map[bool]string{false: "the agent restarted", true: "the host rebooted"}[rebooted]
			wantOutcome(t, res, journal.StateNotApproved, what+" while the deployment awaited approval; nothing was changed")
			h.nothingSwitched()
			if err := h.e.Approve("d1", h.new, "alice"); !errors.Is(err, ErrNotAwaitingApproval) {
				t.Errorf("Approve after the restart: %v, want ErrNotAwaitingApproval", err)
			}
		})
	}
}

// Only a switch or boot awaits approval, and only with a timeout.
func TestApprovalValidation(t *testing.T) {
	h := newHarness(t)
	req := promptedReq("d1", time.Minute)
	req.Action = ActionDryActivate
	if _, err := h.e.Submit(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("dry-activate awaiting approval: %v, want ErrInvalidRequest", err)
	}
	if _, err := h.e.Submit(context.Background(), promptedReq("d2", 0)); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("no approval timeout: %v, want ErrInvalidRequest", err)
	}
	for _, c := range h.nix.callsWith("") {
		if strings.HasPrefix(c, "evaluate") || strings.HasPrefix(c, "build") {
			t.Errorf("a refused request evaluated or built: %q", c)
		}
	}
}
