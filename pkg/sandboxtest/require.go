package sandboxtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv names the environment variable that turns a missing
// prerequisite from a skip into a test failure. CI sets it to "1".
const RequireEnv = "PANTHER_REQUIRE_INTEGRATION"

// Require skips the test (or fails it when RequireEnv=1) unless everything a
// sandbox needs is present: root, systemd, dbus-daemon, overlayfs, a cgroup2
// hierarchy and util-linux, plus iproute2 when netns is true.
func Require(t testing.TB, netns bool) {
	t.Helper()
	if _, err := prerequisites(netns); err != nil {
		skipOrFail(t, err.Error())
	}
}

// skipOrFail skips with reason, or fails when the environment demands that
// integration tests run.
func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("sandboxtest: %s (%s=1 forbids skipping)", reason, RequireEnv)
	}
	t.Skipf("sandboxtest: %s", reason)
}

// prerequisites checks the host and returns the path of the systemd binary.
func prerequisites(netns bool) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("needs root (namespaces, overlay and cgroup mounts)")
	}
	// The places distributions install the manager binary.
	candidates := []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"}
	systemd := ""
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			systemd = c
			break
		}
	}
	if systemd == "" {
		return "", fmt.Errorf("systemd not installed (looked for %s)", strings.Join(candidates, ", "))
	}
	tools := []string{"sh", "mount", "umount", "mknod", "pivot_root", "setpriv", "nsenter", "systemctl", "dbus-daemon"}
	if netns {
		tools = append(tools, "ip")
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("missing commands: %s (packages systemd, dbus, util-linux, iproute2)", strings.Join(missing, " "))
	}
	if ok, err := kernelHasFilesystem("overlay"); err != nil || !ok {
		return "", fmt.Errorf("kernel lacks overlayfs (err=%v)", err)
	}
	if _, err := cgroup2Root(); err != nil {
		return "", err
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
