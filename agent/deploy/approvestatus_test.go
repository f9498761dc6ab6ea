package deploy

import (
	"context"
	"testing"
	"time"
)

// A deployment awaiting approval shows in Status as approving, with its
// deadline, and no longer once it is approved and awaits confirmation.
func TestStatusShowsAwaitingApproval(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", time.Minute))
	aw := w.awaitingApproval()
	st := h.e.Status(context.Background())
	if st.Approving == nil || st.Approving.ID != "d1" {
		t.Fatalf("Status.Approving = %+v, want d1", st.Approving)
	}
	if !st.Approving.ApprovalDeadline.Equal(aw.Deadline) || st.Approving.NewPath != h.new {
		t.Errorf("approving until %v for %s, want %v for %s", st.Approving.ApprovalDeadline, st.Approving.NewPath, aw.Deadline, h.new)
	}
	if st.Pending != nil {
		t.Errorf("Status.Pending = %+v while awaiting approval, want none", st.Pending)
	}
	if err := h.e.Approve("d1", h.new, "alice"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	w.awaiting()
	st = h.e.Status(context.Background())
	if st.Approving != nil {
		t.Errorf("Status.Approving = %+v after Approve, want none", st.Approving)
	}
	if st.Pending == nil || st.Pending.ID != "d1" {
		t.Errorf("Status.Pending = %+v after Approve, want d1", st.Pending)
	}
}

// Declined or timed out, it is not shown any more.
func TestStatusForgetsDeclinedApproval(t *testing.T) {
	h := newHarness(t)
	w := h.submit(promptedReq("d1", time.Minute))
	w.awaitingApproval()
	if _, err := h.e.Decline("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	w.result()
	if st := h.e.Status(context.Background()); st.Approving != nil || st.Pending != nil {
		t.Errorf("after Decline: approving %+v, pending %+v, want none", st.Approving, st.Pending)
	}
}
