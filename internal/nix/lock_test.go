package nix

import (
	"strings"
	"testing"
)

// TestLockArgv: every nix command that reads a flake gets
// --no-update-lock-file --no-write-lock-file (once); nix-env, nix-store and
// nix commands that read no flake are left alone.
func TestLockArgv(t *testing.T) {
	n := New(Options{}, nil)
	const flags = " --no-update-lock-file --no-write-lock-file"
	for argv, want := range map[string]string{
		"nix build --json --no-link -L path:/f#x":      "nix build --json --no-link -L path:/f#x" + flags,
		"nix eval --json path:/f#x --apply f":          "nix eval --json path:/f#x --apply f" + flags,
		"nix flake archive --json path:/f":             "nix flake archive --json path:/f" + flags,
		"nix flake metadata path:/f":                   "nix flake metadata path:/f" + flags,
		"nix path-info --json /nix/store/x":            "nix path-info --json /nix/store/x" + flags,
		"nix eval --json x --no-update-lock-file":      "nix eval --json x --no-update-lock-file",
		"nix flake lock path:/f":                       "nix flake lock path:/f",
		"nix store add-path --name source /d":          "nix store add-path --name source /d",
		"nix store diff-closures /nix/store/a /b":      "nix store diff-closures /nix/store/a /b",
		"nix-env -p /p --list-generations":             "nix-env -p /p --list-generations",
		"nix-store --check-validity --print-invalid /": "nix-store --check-validity --print-invalid /",
	} {
		if got := strings.Join(n.lockArgv(strings.Fields(argv)), " "); got != want {
			t.Errorf("%s:\n got %s\nwant %s", argv, got, want)
		}
	}
}
