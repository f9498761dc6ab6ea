package flakeinputs_test

import (
	"crypto/sha256"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"

	"github.com/pantheros/panther/lab/nixtest"
)

// narOf returns the store path nix would give the tree at dir as a
// "source" input (without adding it), its NAR and NAR hash.
func narOf(t testing.TB, dir string) (path string, nar []byte, narHash string) {
	t.Helper()
	env := nixtest.Env(t).Environ
	cmd := exec.Command("nix", "store", "add-path", "--dry-run", "--name", "source", dir)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("add-path --dry-run: %v", err)
	}
	cmd = exec.Command("nix-store", "--dump", dir)
	cmd.Env = env
	nar, err = cmd.Output()
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	sum := sha256.Sum256(nar)
	return strings.TrimSpace(string(out)), nar, "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
