package deploy

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
)

// roots returns the garbage collector roots in the harness's root dir,
// name -> store path.
func (h *harness) roots() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(h.opts.GCRootDir)
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	for _, ent := range ents {
		target, err := os.Readlink(filepath.Join(h.opts.GCRootDir, ent.Name()))
		if err != nil {
			h.t.Fatal(err)
		}
		out[ent.Name()] = target
	}
	return out
}

func wantRoots(t *testing.T, h *harness, when string, want map[string]string) {
	t.Helper()
	if got := h.roots(); !maps.Equal(got, want) {
		t.Errorf("%s: roots = %v, want %v", when, got, want)
	}
}

// TestGCRootsLiveAsLongAsTheDeployment: the new and the previous system are
// rooted from the build (new) and the switch (previous) until the
// deployment is over, whichever way it ends.
func TestGCRootsLiveAsLongAsTheDeployment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(h *harness, w *watcher)
		want journal.State
	}{
		{name: "confirmed", want: journal.StateConfirmed, end: func(h *harness, w *watcher) {
			if _, err := h.e.Confirm("d1", "alice"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "rolled back", want: journal.StateRolledBack, end: func(h *harness, w *watcher) { w.result() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.opts.DefaultConfirm = time.Second
			h.restart()
			gate := make(chan struct{})
			h.act.mu.Lock()
			h.act.dry[h.new] = []string{"would start the following units: a.service"}
			h.act.mu.Unlock()
			h.act.script(h.new, switchScript{Hold: gate})
			w := h.submit(switchReq("d1"))
			h.act.waitStarted(t, "panther-switch-d1")
			wantRoots(t, h, "during the switch", map[string]string{"d1-new": h.new, "d1-previous": h.old})
			close(gate)
			w.awaiting()
			wantRoots(t, h, "awaiting confirmation", map[string]string{"d1-new": h.new, "d1-previous": h.old})
			tc.end(h, w)
			if rec := h.record("d1"); rec.State != tc.want {
				t.Fatalf("state %s, want %s", rec.State, tc.want)
			}
			wantRoots(t, h, "after the end", map[string]string{})
		})
	}
}

// TestGCRootsOfAFailedDeployment: a deployment that fails before the switch
// leaves no root behind.
func TestGCRootsOfAFailedDeployment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.act.mu.Lock()
	h.act.dryCode = 1
	h.act.mu.Unlock()
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateFailed)
	wantRoots(t, h, "after the failure", map[string]string{})
}

// TestGCRootsSweptAtStart: roots left by an agent that stopped between the
// end of a deployment and their removal go at the next start; those of a
// deployment in flight stay.
func TestGCRootsSweptAtStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, _ = h.deployAwaiting(switchReq("d1"))
	h.e.Close()
	for _, name := range []string{"gone-new", "gone-previous", "x.tmp"} {
		if err := os.Symlink(h.old, filepath.Join(h.opts.GCRootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	h.opts.DefaultConfirm = time.Minute
	h.start()
	want := map[string]string{"d1-new": h.new, "d1-previous": h.old}
	if got := h.roots(); !maps.Equal(got, want) {
		t.Errorf("roots after start = %v, want %v", got, want)
	}
}

// TestRealGCKeepsTheRollbackTarget: with real nix, a garbage collection
// while a deployment awaits confirmation deletes neither the new system nor
// the previous one (the rollback target); once confirmed, they are
// collectable again (the test's systems are in no profile).
func TestRealGCKeepsTheRollbackTarget(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, nil)
	salt := strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")
	build := func(variant string) string {
		t.Helper()
		nixtest.WriteHosts(t, dir, map[string]string{"alpha": nixtest.Salted(variant, salt)})
		i, _ := nix.Toplevel(nixtest.Ref(dir), "alpha")
		p, err := n.Build(t.Context(), i, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldSys, newSys := build(nixtest.Good), build(nixtest.GoodV2)

	h := newBareHarness(t)
	// Roots must be where nix looks for them.
	rootDir, err := os.MkdirTemp("/nix/var/nix/gcroots", "panther-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rootDir) })
	h.opts.GCRootDir = rootDir
	h.opts.DefaultConfirm = time.Minute
	h.old, h.new = oldSys, newSys
	h.nix.scriptBuild(testRef, testHost, newSys)
	h.nix.seed(oldSys)
	h.link(oldSys)
	h.start()
	h.deployAwaiting(switchReq("d1"))

	del := func(p string) (string, error) {
		out, err := exec.CommandContext(t.Context(), "nix-store", "--delete", p).CombinedOutput()
		return string(out), err
	}
	for _, p := range []string{oldSys, newSys} {
		if out, err := del(p); err == nil || !strings.Contains(out, "still alive") {
			t.Errorf("nix-store --delete %s while awaiting confirmation: %v\n%s", p, err, out)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s is gone: %v", p, err)
		}
	}
	if _, err := h.e.Confirm("d1", "alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadDir(rootDir); len(got) != 0 {
		t.Errorf("roots left after the confirmation: %v", slices.Collect(maps.Keys(h.roots())))
	}
	if out, err := del(oldSys); err != nil {
		t.Errorf("nix-store --delete %s after the confirmation: %v\n%s", oldSys, err, out)
	}
}
