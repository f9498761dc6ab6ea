package deploy

import (
	"errors"
	"testing"
)

// The summary carries both closure sizes and the closure changes in bytes:
// what the controller's fleet diff adds up.
func TestSummaryClosureSizes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.diff = []ClosureChange{{Name: "linux", OldVersion: "6.18.16", NewVersion: "6.18.17", SizeDelta: "+2560.0 KiB", SizeBytes: 2560 << 10}}
	h.nix.sizes = map[string]int64{h.old: 1 << 30, h.new: 1<<30 + 2560<<10}
	w := h.submit(switchReq("d1"))
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if sum.CurrentClosureSize != 1<<30 || sum.NewClosureSize != 1<<30+2560<<10 {
		t.Errorf("closure sizes = %d → %d", sum.CurrentClosureSize, sum.NewClosureSize)
	}
	if len(sum.Changes) != 1 || sum.Changes[0].SizeBytes != 2560<<10 {
		t.Errorf("changes = %+v", sum.Changes)
	}
}

// A nix that cannot tell the sizes leaves them 0 and the deploy goes on.
func TestSummaryClosureSizesUnknown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.sizesErr = errors.New("path-info failed")
	w := h.submit(switchReq("d1"))
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if sum.CurrentClosureSize != 0 || sum.NewClosureSize != 0 {
		t.Errorf("closure sizes = %d → %d, want 0 → 0", sum.CurrentClosureSize, sum.NewClosureSize)
	}
	w.awaiting()
}

// A deploy of the running system asks nix for no sizes (nor a diff): a
// no-op deploy pays for no extra nix call.
func TestNoopDeployReadsNoClosureSizes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.nix.scriptBuild(testRef, testHost, h.old)
	w := h.submit(switchReq("d1"))
	sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
	if sum.CurrentPath != sum.NewPath || sum.NewClosureSize != 0 {
		t.Errorf("summary = %+v", *sum)
	}
	h.nix.mu.Lock()
	defer h.nix.mu.Unlock()
	if h.nix.sizeCalls != 0 {
		t.Errorf("ClosureSizes called %d times for a no-op", h.nix.sizeCalls)
	}
}
