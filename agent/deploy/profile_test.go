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

// The system profile steps: a rollback that cannot set the profile back
// still switches to the previous system; a path that is not a NixOS system
// never reaches the profile.

// TestRollbackWhenTheProfileCannotBeSet: a record of the old order (an
// agent that moved the profile before its switch) still gets the profile
// set back by its rollback.
func TestRollbackWhenTheProfileCannotBeSet(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	req := switchReq("d1")
	req.ConfirmTimeout = time.Second
	w, _ := h.deployAwaiting(req)
	rec := h.record("d1")
	rec.ProfileDeferred = false // as an agent before test-then-boot wrote it
	if err := h.j.Update(rec); err != nil {
		t.Fatal(err)
	}
	h.nix.mu.Lock()
	h.nix.setErr, h.nix.setErrPath = errFake, h.old // e.g. the new system broke nix-daemon
	h.nix.mu.Unlock()
	res := w.result()
	wantOutcome(t, res, journal.StateRolledBack, "not confirmed", "could not be set back", errFake.Error())
	if h.current() != h.old {
		t.Errorf("current system = %s, want the previous %s", h.current(), h.old)
	}
	wantCmd := "nix-env -p " + h.opts.Profile + " --set " + h.old
	if !slices.Equal(res.RecoveryCommands, []string{wantCmd}) {
		t.Errorf("recovery commands = %q, want %q", res.RecoveryCommands, wantCmd)
	}
	if got := h.act.callsWith("start-switch panther-rollback-d1"); !slices.Equal(got, []string{"start-switch panther-rollback-d1 " + h.old + " switch"}) {
		t.Errorf("rollback switch calls = %q", got)
	}
	rec = h.record("d1")
	if !strings.Contains(rec.ProfileError, errFake.Error()) || rec.RollbackGeneration != 0 {
		t.Errorf("record: profile error %q, rollback generation %d", rec.ProfileError, rec.RollbackGeneration)
	}
	if !slices.ContainsFunc(w.warnings(), func(l string) bool { return strings.Contains(l, "could not set the system profile back") }) {
		t.Errorf("no warning about the profile: %q", w.warnings())
	}
}

func TestRefusesAPathThatIsNotNixOS(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t)
	h.nix.seed(h.old)
	h.link(h.old)
	pkg := filepath.Join(h.dir, "store", "dddd-hello-2.12")
	if err := os.MkdirAll(filepath.Join(pkg, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.nix.scriptBuild(testRef, testHost, pkg)
	h.start()
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateFailed, ErrNotNixOS.Error(), pkg+" has no nixos-version")
	if res.FailedPhase != PhaseBuild {
		t.Errorf("failed phase = %s, want build", res.FailedPhase)
	}
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile set: %q", got)
	}
	if got := h.act.callsWith(""); len(got) != 0 {
		t.Errorf("activator called: %q", got)
	}
}

func TestRequestedRollbackRefusesAGenerationThatIsNotNixOS(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t)
	pkg := filepath.Join(h.dir, "store", "dddd-hello-2.12")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	h.nix.seed(pkg, h.old)
	h.link(h.old)
	h.start()
	res := h.submit(Request{ID: "r1", Action: ActionRollback}).result()
	wantOutcome(t, res, journal.StateFailed, ErrNotNixOS.Error())
	if got := h.nix.callsWith("set-profile"); len(got) != 0 {
		t.Errorf("profile set: %q", got)
	}
}
