package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestSpecialisationKeptAndRestored: on a host running a specialisation, a
// deploy of a system with the same specialisation activates it while the
// profile gets the new base system; the dead-man's rollback puts the old
// base system back into the profile and re-activates the old
// specialisation.
func TestSpecialisationKeptAndRestored(t *testing.T) {
	d := newDMFleet(t, nixtest.Specialised, fleettest.Options{})
	f, h := d.f, d.h
	ctx := context.Background()
	// The operator switches the host into its specialisation by hand.
	oldSpec := resolve(t, h, filepath.Join(d.first, "specialisation", nixtest.SpecialisationName))
	if out, err := h.SB.Exec(ctx, oldSpec+"/bin/switch-to-configuration", "switch"); err != nil {
		t.Fatalf("switching into the specialisation: %v\n%s", err, out)
	}
	if got := h.CurrentSystem(t); got != oldSpec {
		t.Fatalf("running %s, want the specialisation %s", got, oldSpec)
	}

	f.SetVariant("alpha", nixtest.Salted(nixtest.Specialised, "v2"))
	_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "8s")
	rec := h.JournalRecord(t, id)
	if rec.State != journal.StateAwaiting {
		t.Fatalf("after the deploy: %s (%s)", rec.State, rec.Reason)
	}
	newBase := rec.NewProfilePath
	newSpec := resolve(t, h, filepath.Join(newBase, "specialisation", nixtest.SpecialisationName))
	if rec.Specialisation != nixtest.SpecialisationName || rec.NewPath != newSpec ||
		rec.PreviousSpecialisation != nixtest.SpecialisationName || rec.PreviousPath != oldSpec || rec.PreviousProfilePath != d.first {
		t.Errorf("record: new %s (profile %s, %q), previous %s (profile %s, %q)", rec.NewPath, rec.NewProfilePath, rec.Specialisation,
			rec.PreviousPath, rec.PreviousProfilePath, rec.PreviousSpecialisation)
	}
	if got := h.CurrentSystem(t); got != newSpec {
		t.Errorf("awaiting: running %s, want the new specialisation %s", got, newSpec)
	}
	// Test, then boot: the profile keeps the old base system until the confirm.
	if g := h.CurrentGeneration(t); g.Path != d.first {
		t.Errorf("awaiting: the profile holds %s, want still the old base system %s", g.Path, d.first)
	}
	if st := h.UnitProperty(t, nixtest.ExtraUnit, "ActiveState"); st != "active" {
		t.Errorf("%s is %s in the new specialisation", nixtest.ExtraUnit, st)
	}
	// The garbage collector roots hold the base systems (whose closures
	// hold their specialisations) while the deployment is in flight.
	for kind, want := range map[string]string{"new": newBase, "previous": d.first} {
		if got := resolve(t, h, "/nix/var/nix/gcroots/panther/"+id+"-"+kind); got != want {
			t.Errorf("root %s-%s -> %s, want %s", id, kind, got, want)
		}
	}

	rec = h.WaitRecord(t, id, 30*time.Second, journal.StateRolledBack, journal.StateManual)
	if rec.State != journal.StateRolledBack {
		t.Fatalf("after the window: %s (%s)", rec.State, rec.Reason)
	}
	if got := h.CurrentSystem(t); got != oldSpec {
		t.Errorf("after the rollback: running %s, want the old specialisation %s", got, oldSpec)
	}
	if g := h.CurrentGeneration(t); g.Path != d.first {
		t.Errorf("after the rollback: the profile holds %s, want the old base system %s", g.Path, d.first)
	}
	if st := h.UnitProperty(t, nixtest.ExtraUnit, "ActiveState"); st != "active" {
		t.Errorf("%s is %s after the rollback", nixtest.ExtraUnit, st)
	}
	if out, err := h.SB.Exec(ctx, "ls", "-A", "/nix/var/nix/gcroots/panther"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("garbage collector roots left after the rollback: %q, %v", out, err)
	}
}

// resolve resolves a path inside the host.
func resolve(t *testing.T, h *fleettest.Host, p string) string {
	t.Helper()
	out, err := h.SB.Exec(context.Background(), "readlink", "-e", p)
	if err != nil {
		t.Fatalf("resolving %s: %v", p, err)
	}
	return strings.TrimSpace(string(out))
}
