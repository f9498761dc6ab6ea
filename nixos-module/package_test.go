// Package nixosmodule holds the tests of the Nix packaging that need no
// NixOS: nixos-module/package.nix's vendorHash and the option reference
// docs/nixos-options.md rendered from the module.
package nixosmodule

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVendorHashMatchesGoMod computes the hash buildGoModule checks for the
// vendored modules, offline: `go mod vendor` into a scratch directory (from
// the Go module cache or proxy, no repository change), then the NAR hash of
// that directory with nix. It fails when go.mod/go.sum (or the set of
// imported packages) changed without package.nix's vendorHash.
func TestVendorHashMatchesGoMod(t *testing.T) {
	nixBin, err := exec.LookPath("nix")
	if err != nil {
		t.Skip("nix is not installed (Debian package nix-bin): cannot hash the vendor directory")
	}
	src, err := os.ReadFile("package.nix")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*vendorHash = "([^"]+)";`).FindSubmatch(src)
	if m == nil {
		t.Fatal("package.nix has no vendorHash line")
	}
	want := string(m[1])

	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	hash := exec.Command(nixBin, "--extra-experimental-features", "nix-command", "hash", "path", vendor)
	hash.Stdout, hash.Stderr = &stdout, &stderr
	if err := hash.Run(); err != nil {
		t.Fatalf("nix hash path: %v\n%s", err, stderr.String())
	}
	got := strings.TrimSpace(stdout.String())
	if got != want {
		t.Errorf("nixos-module/package.nix has vendorHash = %q, but go.mod/go.sum vendor to %q: set it (make vendor-hash prints it)", want, got)
	}
}
