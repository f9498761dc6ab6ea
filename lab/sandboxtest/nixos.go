package sandboxtest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// SwitchLock is the lock NixOS's switch-to-configuration takes with a
// non-blocking flock (exit 11 when it is held).
const SwitchLock = "/run/nixos/switch-to-configuration.lock"

// HoldSwitchLock holds SwitchLock inside the sandbox, as a running
// nixos-rebuild or system.autoUpgrade would, until the returned function is
// called or the test ends.
func HoldSwitchLock(t testing.TB, s *Sandbox) (release func()) {
	t.Helper()
	unit := "panther-test-hold-switch-lock.service"
	s.Run(t, "mkdir", "-p", "/run/nixos")
	s.Run(t, "systemd-run", "--unit="+unit, "--collect", "--quiet",
		"/usr/bin/flock", "--exclusive", SwitchLock, "/bin/sleep", "infinity")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.WaitUnit(ctx, unit, "active"); err != nil {
		t.Fatalf("sandboxtest: hold the switch lock: %v", err)
	}
	// The unit is active once flock runs; wait until it holds the lock.
	for {
		if _, err := s.Exec(ctx, "flock", "--nonblock", SwitchLock, "true"); err != nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sandboxtest: the switch lock is still free")
		}
		time.Sleep(20 * time.Millisecond)
	}
	release = func() { _, _ = s.Exec(context.Background(), "systemctl", "stop", unit) }
	t.Cleanup(release)
	return release
}

// FailUnit starts unit (a name ending in .service) as a transient service
// that fails at once and keeps failing: systemd retries it only after an
// hour, so it stays in the auto-restart state with a non-zero exit status,
// a failure that switch-to-configuration reports after any switch (exit 4)
// even though the switch did not touch it. Stop it with systemctl stop.
func FailUnit(t testing.TB, s *Sandbox, unit string) {
	t.Helper()
	s.Run(t, "systemd-run", "--unit="+unit, "--quiet",
		"--property=Restart=always", "--property=RestartSec=1h", "/bin/false")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		sub := s.Run(t, "systemctl", "show", "--value", "--property=SubState", unit)
		if sub == "auto-restart" {
			return
		}
		if ctx.Err() != nil {
			t.Fatal(fmt.Errorf("sandboxtest: %s did not fail: substate %s", unit, sub))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
