package deploy

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// Failed generations: a generation that a rolled-back (or failed)
// deployment created is marked, and a rollback without a number never goes
// to it. With test-then-boot a live deploy creates its generation only at
// the confirm, so a rolled-back one leaves none (records of the old order
// still mark theirs).

// historyWithAFailure: generation 1 runs h.old; d1 switches to h.new
// (generation 2, confirmed); d2 switches to a third system and is rolled
// back without ever touching the profile: generation 2 still runs.
func historyWithAFailure(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	h.deployAwaiting(switchReq("d1"))
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	third := storePath(t, filepath.Dir(h.new), "cccc-nixos-system-yoga-25.05", "25.05.3")
	h.nix.scriptBuild(testRef, testHost, third)
	w, _ := h.deployAwaiting(switchReq("d2"))
	wantOutcome(t, w.result(), journal.StateRolledBack)
	if rec := h.record("d2"); rec.NewGeneration != 0 || rec.RollbackGeneration != 0 || h.current() != h.new {
		t.Fatalf("history: d2 made generation %d, its rollback %d, running %s", rec.NewGeneration, rec.RollbackGeneration, h.current())
	}
	return h, third
}

func TestRollbackSkipsFailedGenerations(t *testing.T) {
	t.Parallel()
	h, _ := historyWithAFailure(t)
	// 2 holds the running system: the previous one is 1.
	w := h.submit(Request{ID: "r1", Action: ActionRollback, ConfirmTimeout: 5 * time.Second})
	aw := w.awaiting()
	if aw.NewPath != h.old {
		t.Errorf("rollback went to %s, want generation 1's %s", aw.NewPath, h.old)
	}
	if _, err := h.e.Confirm("r1", "alice"); err != nil {
		t.Fatal(err)
	}
}

func TestGenerationsMarkFailed(t *testing.T) {
	t.Parallel()
	h, _ := historyWithAFailure(t)
	gens, err := h.e.Generations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type gen struct {
		Number int64
		Result string
		Failed bool
	}
	var got []gen
	for _, g := range gens {
		got = append(got, gen{g.Number, g.Result, g.Failed})
	}
	want := []gen{{2, "confirmed", false}, {1, "", false}}
	if !slices.Equal(got, want) {
		t.Errorf("generations = %+v, want %+v", got, want)
	}
}

func TestRollbackWithOnlyFailedGenerationsBefore(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w, _ := h.deployAwaiting(switchReq("d1"))
	wantOutcome(t, w.result(), journal.StateRolledBack) // no generation was made: 1 runs h.old
	res := h.submit(Request{ID: "r1", Action: ActionRollback}).result()
	wantOutcome(t, res, journal.StateFailed, ErrNoSuchGen.Error(), "generation 1 is the oldest")
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("set-profile calls: %q (want none: test-then-boot)", got)
	}
}
