package nix_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pantheros/panther/lab/nixtest"
)

// TestRealNixNeverWritesTheLock: with real nix, evaluating a flake whose
// lock needs changes (an input without a flake.lock) never writes
// flake.lock into the flake's directory — for the agent, the signed,
// content-addressed source tree. nix 2.8 without the lock flags wrote it,
// as root, whatever the directory's mode.
func TestRealNixNeverWritesTheLock(t *testing.T) {
	n := nixtest.Nix(t)
	dep := t.TempDir()
	write := func(dir, name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dep, "flake.nix", `{ outputs = _: { msg = "dep"; }; }`)
	dir := t.TempDir()
	write(dir, "flake.nix", `{ inputs.dep.url = "path:`+dep+`"; outputs = { self, dep }: { nixosConfigurations = { }; }; }`)
	hosts, err := n.Hosts(t.Context(), "path:"+dir)
	t.Logf("hosts %v, err %v", hosts, err)
	if _, err := os.Stat(filepath.Join(dir, "flake.lock")); err == nil {
		t.Fatal("nix wrote flake.lock into the flake's directory")
	}
}
