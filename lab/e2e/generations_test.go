package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestRollbackSkipsFailedGenerations: a deployment that was rolled back
// leaves no generation (test, then boot: the profile moves only at the
// confirm), so `rollback --list` shows no failed one, and `rollback
// --rollback` without a number goes to the newest other system that was
// kept — not to the system that was just rejected.
func TestRollbackSkipsFailedGenerations(t *testing.T) {
	d := newDMFleet(t, nixtest.Good, fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", nixtest.GoodV2)
	d.deploy(t, 0, "--confirm-timeout", "10s") // generation 2, confirmed
	second := h.CurrentSystem(t)
	f.SetVariant("alpha", nixtest.Salted(nixtest.Good, "rejected"))
	_, rejectedID := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "5s") // no generation: never confirmed
	rec := h.WaitRecord(t, rejectedID, 30*time.Second, journal.StateRolledBack, journal.StateManual)
	if rec.State != journal.StateRolledBack || rec.NewGeneration != 0 || rec.RollbackGeneration != 0 {
		t.Fatalf("the rejected deploy: %s (%s), generation %d, rollback generation %d", rec.State, rec.Reason, rec.NewGeneration, rec.RollbackGeneration)
	}
	rejected := rec.NewPath
	d.wantSystem(t, second, "")

	failed := map[int64]bool{}
	r := f.MustCtl(0, "rollback", "alpha", "--list", "--json")
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var g struct {
			Number int64 `json:"number"`
			Failed bool  `json:"failed"`
		}
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatalf("rollback --list --json line %q: %v", line, err)
		}
		failed[g.Number] = g.Failed
	}
	// Test, then boot: the rejected system never entered the profile, so
	// there is no failed generation to skip (records of the old order still
	// mark theirs: the agent's unit tests).
	if want := map[int64]bool{1: false, 2: false}; len(failed) != 2 || failed[1] || failed[2] {
		t.Errorf("generations (failed) = %v, want %v", failed, want)
	}
	t.Logf("rollback --list:\n%s", f.MustCtl(0, "rollback", "alpha", "--list").Stdout)

	// Generation 2 holds the running system: the previous one is 1.
	f.MustCtl(0, "rollback", "alpha", "--rollback", "--yes")
	if got := h.CurrentSystem(t); got == rejected {
		t.Fatalf("rollback --rollback went back to the rejected system %s", rejected)
	}
	d.wantSystem(t, d.first, second)
}
