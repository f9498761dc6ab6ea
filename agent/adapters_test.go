package agent

import "testing"

// TestProfileStore: as root the agent sets the system profile in the local
// store, so a rollback does not need the nix-daemon of the system it
// replaces.
func TestProfileStore(t *testing.T) {
	if got := profileStore(0); got != "local" {
		t.Errorf("profileStore(root) = %q, want local", got)
	}
	if got := profileStore(1000); got != "" {
		t.Errorf("profileStore(user) = %q, want nix's own choice", got)
	}
}
