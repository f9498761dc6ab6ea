package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestRollbackWhenTheProfileCannotBeSet: the profile directory turns
// read-only while a deployment awaits confirmation (a full or read-only
// disk, a broken store): the dead-man's rollback cannot set the profile
// back, but it still switches the host to the previous system, and the
// journal and the result say that the profile was not set, with the
// command that sets it.
func TestRollbackWhenTheProfileCannotBeSet(t *testing.T) {
	d := newDMFleet(t, nixtest.Good, fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", nixtest.GoodV2)
	_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "8s")
	second := h.CurrentSystem(t)
	if second == d.first {
		t.Fatalf("the deploy did not switch")
	}
	ctx := context.Background()
	const dir = "/nix/var/nix/profiles"
	for _, argv := range [][]string{{"mount", "--bind", dir, dir}, {"mount", "-o", "remount,bind,ro", dir}} {
		if out, err := h.SB.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	rec := h.WaitRecord(t, id, 40*time.Second, journal.StateRolledBack, journal.StateManual)
	if rec.State != journal.StateRolledBack {
		t.Fatalf("after the window: %s (%s)", rec.State, rec.Reason)
	}
	if got := h.CurrentSystem(t); got != d.first {
		t.Errorf("after the rollback the host runs %s, want the previous %s", got, d.first)
	}
	// Test, then boot: the profile never left the previous system, so the
	// rollback has nothing to set back (the old order's profile error is
	// covered by the agent's unit test of a record written before).
	if rec.ProfileError != "" || strings.Contains(rec.Reason, "could not be set back") || len(rec.RecoveryCommands) != 0 {
		t.Errorf("record: profile error %q, reason %q, recovery %q", rec.ProfileError, rec.Reason, rec.RecoveryCommands)
	}
	if out, err := h.SB.Exec(ctx, "umount", dir); err != nil {
		t.Fatalf("umount %s: %v\n%s", dir, err, out)
	}
	if g := h.CurrentGeneration(t); g.Path != d.first {
		t.Errorf("the profile holds %s, want the previous %s (never moved)", g.Path, d.first)
	}
	d.wantSystem(t, d.first, second)
}
