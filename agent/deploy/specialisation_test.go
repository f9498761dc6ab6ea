package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// Specialisations: the profile only ever holds base systems; a switch keeps
// the host in the specialisation it runs when the new system has it; a
// rollback re-activates the specialisation that ran.

// specialise gives the toplevel base a specialisation name (a toplevel of
// its own, linked from base/specialisation/name) and returns its path.
func specialise(t *testing.T, base, name string) string {
	t.Helper()
	spec := storePath(t, filepath.Dir(base), filepath.Base(base)+"-specialisation-"+name, "spec "+name)
	if err := os.MkdirAll(filepath.Join(base, "specialisation"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(spec, filepath.Join(base, "specialisation", name)); err != nil {
		t.Fatal(err)
	}
	return spec
}

// specialisedHarness runs h.old's specialisation "gpu" (the profile holds
// h.old).
func specialisedHarness(t *testing.T, newHasGPU bool) (h *harness, oldGPU, newGPU string) {
	t.Helper()
	h = newBareHarness(t)
	oldGPU = specialise(t, h.old, "gpu")
	if newHasGPU {
		newGPU = specialise(t, h.new, "gpu")
	}
	h.nix.seed(h.old)
	h.link(oldGPU)
	h.start()
	return h, oldGPU, newGPU
}

func TestSwitchKeepsTheSpecialisation(t *testing.T) {
	t.Parallel()
	h, oldGPU, newGPU := specialisedHarness(t, true)
	w, aw := h.deployAwaiting(switchReq("d1"))
	if aw.NewPath != newGPU || h.current() != newGPU {
		t.Errorf("activated %s (running %s), want the new gpu specialisation %s", aw.NewPath, h.current(), newGPU)
	}
	wantCalls := []string{"dry-activate " + newGPU, "start-switch panther-switch-d1 " + newGPU + " test"}
	if got := h.act.callsWith(""); !slices.Equal(got, wantCalls) {
		t.Errorf("activator calls %q, want %q", got, wantCalls)
	}
	rec := h.record("d1")
	if rec.PreviousPath != oldGPU || rec.PreviousProfilePath != h.old || rec.PreviousSpecialisation != "gpu" ||
		rec.NewPath != newGPU || rec.NewProfilePath != h.new || rec.Specialisation != "gpu" {
		t.Errorf("record: previous %s (profile %s, %q), new %s (profile %s, %q)", rec.PreviousPath, rec.PreviousProfilePath,
			rec.PreviousSpecialisation, rec.NewPath, rec.NewProfilePath, rec.Specialisation)
	}
	// Not confirmed: the profile never left the old base system, and the
	// host gets the old specialisation back.
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed")
	if h.current() != oldGPU || res.StorePath != oldGPU {
		t.Errorf("after the rollback: running %s, result %s; want %s", h.current(), res.StorePath, oldGPU)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile calls %q, want none (test-then-boot)", got)
	}
	if got := h.act.callsWith("start-switch panther-rollback"); !slices.Equal(got, []string{"start-switch panther-rollback-d1 " + oldGPU + " switch"}) {
		t.Errorf("rollback switch %q", got)
	}
}

func TestSwitchToASystemWithoutTheSpecialisation(t *testing.T) {
	t.Parallel()
	h, oldGPU, _ := specialisedHarness(t, false)
	w, aw := h.deployAwaiting(switchReq("d1"))
	if aw.NewPath != h.new {
		t.Errorf("activated %s, want the new base system %s", aw.NewPath, h.new)
	}
	if !slices.ContainsFunc(w.warnings(), func(l string) bool { return strings.Contains(l, "does not have: activating its base system") }) {
		t.Errorf("warnings %q", w.warnings())
	}
	if rec := h.record("d1"); rec.Specialisation != "" || rec.NewProfilePath != "" || rec.PreviousSpecialisation != "gpu" {
		t.Errorf("record: specialisation %q, new profile path %q, previous specialisation %q", rec.Specialisation, rec.NewProfilePath, rec.PreviousSpecialisation)
	}
	wantOutcome(t, w.result(), journal.StateRolledBack)
	if h.current() != oldGPU {
		t.Errorf("after the rollback the host runs %s, want the gpu specialisation %s", h.current(), oldGPU)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile calls %q, want none (test-then-boot)", got)
	}
}

func TestBootDeployOfASpecialisedHost(t *testing.T) {
	t.Parallel()
	h, oldGPU, _ := specialisedHarness(t, true)
	req := switchReq("d1")
	req.Action = ActionBoot
	res := h.submit(req).result()
	wantOutcome(t, res, journal.StateBootScheduled)
	if got := h.act.callsWith("start-switch"); !slices.Equal(got, []string{"start-switch panther-switch-d1 " + h.new + " boot"}) {
		t.Errorf("switch calls %q, want the base system's boot", got)
	}
	if h.current() != oldGPU {
		t.Errorf("a boot deploy changed the running system to %s", h.current())
	}
}

// TestRollbackToBeforeASpecialisation: the running generation is found
// through its specialisation, so "previous" is the generation before it.
func TestRequestedRollbackFromASpecialisation(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t)
	newGPU := specialise(t, h.new, "gpu")
	specialise(t, h.old, "gpu")
	h.nix.seed(h.old, h.new)
	h.link(newGPU)
	h.start()
	w := h.submit(Request{ID: "r1", Action: ActionRollback, ConfirmTimeout: 5 * time.Second})
	aw := w.awaiting()
	oldGPU, _ := filepath.EvalSymlinks(filepath.Join(h.old, "specialisation", "gpu"))
	if aw.NewPath != oldGPU {
		t.Errorf("rollback activated %s, want generation 1's gpu specialisation %s", aw.NewPath, oldGPU)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile calls before the confirm %q, want none", got)
	}
	// The confirm puts the base system into the profile and runs the
	// activated specialisation's boot.
	if _, err := h.e.Confirm("r1", "alice"); err != nil {
		t.Fatal(err)
	}
	if got := h.nix.callsWith("set-profile"); !slices.Equal(got, []string{"set-profile " + h.opts.Profile + " " + h.old}) {
		t.Errorf("profile calls %q", got)
	}
	if got := h.act.callsWith("start-switch panther-boot-r1"); !slices.Equal(got, []string{"start-switch panther-boot-r1 " + oldGPU + " boot"}) {
		t.Errorf("boot step %q", got)
	}
}
