package sandboxtest

import (
	"os"
	"testing"

	"github.com/pantheros/panther/lab/sandbox"
)

// RequireEnv names the environment variable that turns a missing
// prerequisite from a skip into a test failure. CI sets it to "1".
const RequireEnv = "PANTHER_REQUIRE_INTEGRATION"

// Require skips the test (or fails it when RequireEnv=1) unless everything a
// sandbox needs is present: root, systemd, dbus-daemon, overlayfs, a cgroup2
// hierarchy and util-linux, plus iproute2 when netns is true (see
// sandbox.Check).
func Require(t testing.TB, netns bool) {
	t.Helper()
	if err := sandbox.Check(netns); err != nil {
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
