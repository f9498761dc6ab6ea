// Package sandbox boots a real systemd as PID 1 of its own namespaces: a
// throwaway host on this machine for integration tests and for the panther
// lab (deploy switches, health checks over D-Bus, the dead-man switch and
// host reboots).
//
// A sandbox runs on an overlay whose read-only lower layer is the machine's /
// and whose upper layer lives in a state directory that survives Reboot, so
// host binaries (nix, panther-agent) are visible inside while every write
// (including to /nix) stays in the sandbox. /run is a fresh tmpfs on every
// boot, /proc/sys and /sys are read-only, and the machine's enabled units and
// the /tmp cleanup rule are hidden, so booting a sandbox cannot change the
// machine. With Options.NetNS the sandbox gets its own network namespace
// joined to the machine by a veth pair.
//
// A sandbox models a NixOS host where panther depends on it. PID 1's
// default PATH holds only systemd's tools (SystemdBinDir), so a transient
// unit finds systemctl but not mv, as on NixOS; ServicePath is the PATH of a
// NixOS service unit (Options.HostDefaultPath turns this off). And the boot
// loader entry BootEntry is the boot default: before systemd starts, every
// boot activates the system it names and links /run/booted-system to it, as
// NixOS's stage 2 does, so a reboot brings up the boot default, not
// whatever ran before.
//
// A reboot started inside (`systemctl reboot`, an activation that
// reboots) ends systemd as reboot(2) ends a PID namespace's init; the
// sandbox then boots again on its state directory, as Reboot does, and a
// power-off from inside leaves it down (see Boots and WaitBoot).
//
// Booting needs root, systemd, dbus-daemon and util-linux (mount,
// pivot_root, setpriv, nsenter), plus iproute2 for NetNS; Check says which
// are missing and how to get them. A sandbox dies with the process that
// booted it, so nothing outlives a crash but empty cgroups, which the next
// Boot or RemoveStale sweeps.
package sandbox
