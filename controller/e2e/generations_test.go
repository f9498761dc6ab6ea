package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/pkg/fleettest"
	"github.com/pantheros/panther/pkg/nixtest"
)

// TestRollbackSkipsFailedGenerations: a generation made by a deployment
// that was rolled back is marked failed in `rollback --list`, and
// `rollback --rollback` without a number goes past it (and past the
// generation the rollback itself made) to the newest system that did not
// fail — not to the system that was just rejected.
func TestRollbackSkipsFailedGenerations(t *testing.T) {
	d := newDMFleet(t, nixtest.Good, fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", nixtest.GoodV2)
	d.deploy(t, 0, "--confirm-timeout", "10s") // generation 2, confirmed
	second := h.CurrentSystem(t)
	f.SetVariant("alpha", nixtest.Salted(nixtest.Good, "rejected"))
	_, rejectedID := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "5s") // generation 3
	rec := h.WaitRecord(t, rejectedID, 30*time.Second, journal.StateRolledBack, journal.StateManual)
	if rec.State != journal.StateRolledBack || rec.NewGeneration != 3 || rec.RollbackGeneration != 4 {
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
	if want := map[int64]bool{1: false, 2: false, 3: true, 4: false}; len(failed) != 4 || !failed[3] || failed[1] || failed[2] || failed[4] {
		t.Errorf("failed generations = %v, want %v", failed, want)
	}
	table := f.MustCtl(0, "rollback", "alpha", "--list").Stdout
	t.Logf("rollback --list:\n%s", table)
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "3" && !strings.Contains(line, " x ") {
			t.Errorf("generation 3 is not marked failed: %q", line)
		}
	}

	// Generation 4 (running) and 2 hold the running system, 3 failed: the
	// previous one is generation 1.
	f.MustCtl(0, "rollback", "alpha", "--rollback", "--yes")
	if got := h.CurrentSystem(t); got == rejected {
		t.Fatalf("rollback --rollback went back to the rejected system %s", rejected)
	}
	d.wantSystem(t, d.first, second)
}
