// Package sandboxtest boots a real systemd as PID 1 of its own namespaces for
// integration tests: deploy switches, health checks over D-Bus, the dead-man
// switch and host reboots.
//
// A sandbox runs on an overlay whose read-only lower layer is the host's / and
// whose upper layer lives in a state directory that survives Reboot, so host
// binaries (nix, test binaries) are visible inside while every write (including
// to /nix) stays in the sandbox. /run is a fresh tmpfs on every boot, /proc/sys
// and /sys are read-only, and the host's enabled units and the /tmp cleanup rule
// are hidden, so booting a sandbox cannot change the host. With Options.NetNS
// the sandbox gets its own network namespace joined to the host by a veth pair.
//
// Booting needs root, systemd, dbus-daemon and util-linux (mount, pivot_root,
// setpriv, nsenter), plus iproute2 for NetNS. Boot skips the test with the
// reason when a piece is missing, or fails it when PANTHER_REQUIRE_INTEGRATION=1
// (CI sets it so nothing is skipped silently).
package sandboxtest
