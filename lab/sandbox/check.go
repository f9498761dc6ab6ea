package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// ErrMissing is wrapped by the errors of Check and Boot when this machine
// lacks something a sandbox needs.
var ErrMissing = errors.New("missing prerequisite")

// MissingError lists what a sandbox needs and this machine lacks, each with
// how to get it.
type MissingError struct {
	// Items are the missing pieces, one sentence each, e.g. "not root:
	// run as root (namespaces, overlay and cgroup mounts need it)".
	Items []string
}

func (e *MissingError) Error() string {
	return strings.Join(e.Items, "; ")
}

// Unwrap makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Unwrap() error { return ErrMissing }

// tool is a command a sandbox runs on the machine and the Debian package
// that installs it.
type tool struct{ name, pkg string }

// tools returns the commands Boot runs, plus iproute2's ip with netns.
func tools(netns bool) []tool {
	t := []tool{
		{"sh", "dash"}, {"mount", "mount"}, {"umount", "mount"}, {"mknod", "coreutils"},
		{"pivot_root", "util-linux"}, {"setpriv", "util-linux"}, {"nsenter", "util-linux"},
		{"systemctl", "systemd"}, {"dbus-daemon", "dbus"}, {"dpkg-query", "dpkg"},
	}
	if netns {
		t = append(t, tool{"ip", "iproute2"})
	}
	return t
}

// systemdCandidates are the places distributions install the manager binary.
var systemdCandidates = []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"}

// Check reports whether this machine can boot sandboxes (with a network
// namespace when netns is true): root, systemd, dbus-daemon, util-linux,
// overlayfs, a cgroup2 hierarchy, and iproute2 for netns. The error is a
// *MissingError naming every missing piece and how to get it.
func Check(netns bool) error {
	_, err := prerequisites(netns)
	return err
}

// prerequisites checks the machine and returns the path of the systemd
// binary.
func prerequisites(netns bool) (string, error) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "needs root (namespaces, overlay and cgroup mounts): run it as root, e.g. with sudo")
	}
	systemd := ""
	for _, c := range systemdCandidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			systemd = c
			break
		}
	}
	if systemd == "" {
		missing = append(missing, fmt.Sprintf("systemd not installed (looked for %s): apt-get install systemd", strings.Join(systemdCandidates, ", ")))
	}
	var cmds, pkgs []string
	for _, t := range tools(netns) {
		if _, err := exec.LookPath(t.name); err != nil {
			cmds = append(cmds, t.name)
			if !slices.Contains(pkgs, t.pkg) {
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(cmds) > 0 {
		missing = append(missing, fmt.Sprintf("missing commands: %s: apt-get install %s", strings.Join(cmds, " "), strings.Join(pkgs, " ")))
	}
	if ok, err := kernelHasFilesystem("overlay"); err != nil || !ok {
		missing = append(missing, fmt.Sprintf("kernel lacks overlayfs (err=%v): modprobe overlay", err))
	}
	if _, err := cgroup2Root(); err != nil {
		missing = append(missing, err.Error()+": mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd.unified_cgroup_hierarchy=1)")
	}
	if len(missing) > 0 {
		return "", &MissingError{Items: missing}
	}
	return systemd, nil
}

// kernelHasFilesystem reports whether /proc/filesystems lists name.
func kernelHasFilesystem(name string) (bool, error) {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return false, fmt.Errorf("read filesystems: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == name {
			return true, nil
		}
	}
	return false, sc.Err()
}
