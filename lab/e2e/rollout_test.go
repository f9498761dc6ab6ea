package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestRolloutWaves deploys four hosts in waves of two (issue 13 item 3):
// a wave with more unhealthy hosts than --max-unhealthy halts the rollout
// and the later waves are not touched (no deployment on their agents) but
// reported as skipped; a wave within the limit lets the next one go. The
// hosts go by name: wave 1 is alpha and beta, wave 2 delta and gamma.
func TestRolloutWaves(t *testing.T) {
	hosts := map[string]string{}
	for _, h := range flHosts {
		hosts[h] = nixtest.Good
	}
	f := fleettest.New(t, fleettest.Options{Hosts: hosts})
	b, err := json.Marshal(map[string]any{"hosts": flInventory})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Flake, inventory.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	x := &flFleet{Fleet: f}

	t.Run("ABadWaveHaltsTheRest", func(t *testing.T) {
		x.setVariants(nixtest.GoodV2, map[string]string{"alpha": nixtest.BuildFail})
		before := x.snapshot(t)

		r := x.deploy(t, 3, "--all", "--batch", "2", "--jobs", "2", "--yes", "--json")

		x.wantAttempted(t, x.added(t, before), map[string]journal.State{"alpha": journal.StateFailed, "beta": journal.StateConfirmed})
		_, sums := flParseJSON(t, r)
		if s := sums["alpha"]; s.Outcome != "failed" || s.ExitCode != 3 {
			t.Errorf("alpha summary: %+v", s)
		}
		if s := sums["beta"]; s.Outcome != "confirmed" {
			t.Errorf("beta summary: %+v", s)
		}
		for _, h := range []string{"gamma", "delta"} {
			if s := sums[h]; s.Outcome != "skipped" || s.ExitCode == 0 || !strings.Contains(s.Result, "wave 1 had 1 unhealthy host(s) (alpha), more than --max-unhealthy 0") {
				t.Errorf("%s summary after wave 1 failed: %+v", h, s)
			}
		}
	})

	t.Run("AWaveWithinMaxUnhealthyGoesOn", func(t *testing.T) {
		x.setVariants(nixtest.Good, map[string]string{"alpha": nixtest.BuildFail})
		before := x.snapshot(t)

		r := x.deploy(t, 3, "--all", "--batch", "50%", "--max-unhealthy", "1", "--pause", "1s", "--jobs", "2", "--yes")

		x.wantAttempted(t, x.added(t, before), map[string]journal.State{
			"alpha": journal.StateFailed, "beta": journal.StateConfirmed, "gamma": journal.StateConfirmed, "delta": journal.StateConfirmed,
		})
		wantTable(t, r, map[string]string{"alpha": "failed in build", "beta": "confirmed", "gamma": "confirmed", "delta": "confirmed"})
		if !strings.Contains(r.Stdout, "WAVE") {
			t.Errorf("the table has no WAVE column:\n%s", r.Stdout)
		}
	})
}
