package deploy

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// Requested rollbacks: switching to an earlier generation with the same
// protection as a deploy.

// newRollbackHarness is a host whose profile holds h.old, h.new and a third
// system (generations 1-3), running the newest.
func newRollbackHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newBareHarness(t)
	third := storePath(t, filepath.Dir(h.new), "cccc-nixos-system-yoga-25.05", "25.05.3")
	h.nix.seed(h.old, h.new, third)
	h.link(third)
	h.start()
	return h, third
}

func TestRequestedRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		generation int64
		want       func(h *harness) string // the target store path
	}{
		{name: "previous generation", generation: 0, want: func(h *harness) string { return h.new }},
		{name: "generation 1", generation: 1, want: func(h *harness) string { return h.old }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, third := newRollbackHarness(t)
			target := tc.want(h)
			w := h.submit(Request{ID: "r1", Action: ActionRollback, Generation: tc.generation, ConfirmTimeout: 5 * time.Second, RequestedBy: "alice"})
			sum := w.until("the summary", func(ev Event) bool { return ev.Kind == EventSummary }).Summary
			if sum.CurrentPath != third || sum.CurrentGeneration != 3 || sum.NewPath != target {
				t.Errorf("summary = %+v", *sum)
			}
			aw := w.awaiting()
			if aw.NewPath != target || aw.NewGeneration != 0 {
				t.Errorf("awaiting = %+v, want %s and no generation before the confirm", *aw, target)
			}
			if h.current() != target {
				t.Errorf("current system = %s, want %s", h.current(), target)
			}
			if got := h.nix.callsWith("build"); len(got) != 0 {
				t.Errorf("a rollback built: %q", got)
			}
			wantSwitch := []string{"dry-activate " + target, "start-switch panther-switch-r1 " + target + " test"}
			if got := h.act.callsWith(""); !slices.Equal(got, wantSwitch) {
				t.Errorf("activator calls:\n got %q\nwant %q", got, wantSwitch)
			}
			res, err := h.e.Confirm("r1", "alice")
			if err != nil {
				t.Fatal(err)
			}
			wantOutcome(t, res, journal.StateConfirmed)
			rec := h.record("r1")
			if rec.Action != string(ActionRollback) || rec.PreviousPath != third || rec.PreviousGeneration != 3 ||
				rec.NewPath != target || rec.NewGeneration != 4 {
				t.Errorf("record = %+v", *rec)
			}
		})
	}
}

// TestRequestedRollbackUnconfirmed: the dead-man also guards a rollback,
// restoring the system it replaced.
func TestRequestedRollbackUnconfirmed(t *testing.T) {
	t.Parallel()
	h, third := newRollbackHarness(t)
	w := h.submit(Request{ID: "r1", Action: ActionRollback})
	w.awaiting()
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed")
	if h.current() != third || res.StorePath != third || res.Generation != 3 {
		t.Errorf("after the dead-man: current %s, result %+v; want %s generation 3 (the profile never moved)", h.current(), *res, third)
	}
}

func TestRequestedRollbackRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		seed       int // generations in the profile (the newest runs)
		generation int64
		msgs       []string
	}{
		{name: "unknown generation", seed: 3, generation: 7,
			msgs: []string{ErrNoSuchGen.Error(), "generation 7", "(generations: 3, 2, 1)"}},
		{name: "nothing older", seed: 1, generation: 0,
			msgs: []string{ErrNoSuchGen.Error(), "generation 1 is the oldest"}},
		{name: "empty profile", seed: 0, generation: 0,
			msgs: []string{ErrNoSuchGen.Error(), "has no generations"}},
		{name: "current generation", seed: 3, generation: 3,
			msgs: []string{ErrInvalidRequest.Error(), "generation 3 is already the current one"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newBareHarness(t)
			paths := []string{h.old, h.new, storePath(t, filepath.Dir(h.new), "cccc-nixos-system-yoga-25.05", "25.05.3")}
			h.nix.seed(paths[:tc.seed]...)
			if tc.seed > 0 {
				h.link(paths[tc.seed-1])
			}
			h.start()
			res := h.submit(Request{ID: "r1", Action: ActionRollback, Generation: tc.generation}).result()
			wantOutcome(t, res, journal.StateFailed, tc.msgs...)
			if res.FailedPhase != PhaseValidate {
				t.Errorf("failed phase = %q", res.FailedPhase)
			}
			if got := h.nix.callsWith("set-profile"); len(got) != 0 {
				t.Errorf("profile changed: %q", got)
			}
			if got := h.act.callsWith(""); len(got) != 0 {
				t.Errorf("activator called: %q", got)
			}
		})
	}
}
