package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestBuildAllOnAgents has each host build its own configuration on its
// agent: one good, one whose build fails; nothing is switched.
func TestBuildAllOnAgents(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": nixtest.Good, "beta": nixtest.BuildFail}})
	// A builder no one built before, so the agent really builds (the
	// sandboxes share the machine's /nix/store).
	appendFile(t, filepath.Join(f.Flake, "builder.sh"), fmt.Sprintf("\n# %s %d\n", t.Name(), time.Now().UnixNano()))
	waitReachable(t, f, "alpha")
	waitReachable(t, f, "beta")
	before := f.Hosts["alpha"].CurrentSystem(t)

	r := f.MustCtl(3, "build-all", "--on-agents", "--flake", f.Flake)
	t.Logf("build-all --on-agents:\n%s", r.Stdout)
	for _, want := range []string{
		"building 2 hosts on their agents, 2 at a time",
		"alpha: done in", "/nix/store/",
		"beta: FAILED after", "error: builder for",
		"Passed: 1\nFailed: 1\nTotal: 2\n",
		"Failed hosts:\n  beta  logs/build/beta.log\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q\n%s", want, r)
		}
	}
	for host, want := range map[string][]string{
		"alpha": {"==> upload sha256:", "building the lab system of alpha", "result: built"},
		"beta":  {"lab-broken.c:3:1: error", "result: failed"},
	} {
		b, err := os.ReadFile(filepath.Join(f.Dir, "logs", "build", host+".log"))
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s.log lacks %q:\n%s", host, w, b)
			}
		}
	}
	if got := f.Hosts["alpha"].CurrentSystem(t); got != before {
		t.Errorf("building switched alpha: %q → %q", before, got)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
