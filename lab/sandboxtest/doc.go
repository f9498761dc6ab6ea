// Package sandboxtest boots lab/sandbox systems for integration tests: a
// real systemd as PID 1 of its own namespaces, bound to the test that booted
// it (deploy switches, health checks over D-Bus, the dead-man switch and
// host reboots).
//
// It is a thin wrapper over lab/sandbox: Boot stops the sandbox with
// t.Cleanup and uses a new t.TempDir() as its disk unless told otherwise,
// and the calls that can fail fail the test. See lab/sandbox for what a
// sandbox shares with the machine and what it hides, and for how it models
// a NixOS host (PID 1's default PATH, the boot default and stage 2);
// HoldSwitchLock and FailUnit set up the host states a switch must cope
// with.
//
// Booting needs root, systemd, dbus-daemon and util-linux (mount, pivot_root,
// setpriv, nsenter), plus iproute2 for NetNS. Boot skips the test with the
// reason when a piece is missing, or fails it when PANTHER_REQUIRE_INTEGRATION=1
// (CI sets it so nothing is skipped silently).
package sandboxtest
