package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// fakeRunner records every command line and answers from a script.
type fakeRunner struct {
	calls   []string
	respond func(argv []string) ([]string, int, error)
}

func (f *fakeRunner) Run(ctx context.Context, argv []string, onLine func(string)) (int, error) {
	f.calls = append(f.calls, strings.Join(argv, " "))
	if f.respond == nil {
		return 0, nil
	}
	lines, code, err := f.respond(argv)
	for _, l := range lines {
		onLine(l)
	}
	return code, err
}

// restarts records the units restartOverBus would have restarted.
type restarts []string

func (r *restarts) restart(ctx context.Context, unit string) error {
	*r = append(*r, unit)
	return nil
}

func cgroupFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgentSelfCheckConfig: check-config runs the new binary with the
// unit's arguments and its last line is the refusal.
func TestAgentSelfCheckConfig(t *testing.T) {
	f := &fakeRunner{respond: func(argv []string) ([]string, int, error) {
		if strings.Contains(strings.Join(argv, " "), "bad.json") {
			return []string{"", "panther-agent: config: criticalUnits: \"nginx\" is not a unit name", ""}, 1, nil
		}
		return []string{"{HostName:yoga ...}"}, 0, nil
	}}
	a := newAgentSelf("panther-agent.service", []string{"/a", "run"}, cgroupFile(t, "0::/system.slice/panther-agent.service\n"), f, nil, hclog.NewNullLogger())
	if err := a.CheckConfig(context.Background(), []string{"/new/bin/panther-agent", "run", "--config", "good.json", "--log-level", "info"}); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if want := "/new/bin/panther-agent check-config --config good.json --log-level info"; f.calls[0] != want {
		t.Errorf("ran %q, want %q", f.calls[0], want)
	}
	err := a.CheckConfig(context.Background(), []string{"/new/bin/panther-agent", "run", "--config", "bad.json"})
	if err == nil || err.Error() != `panther-agent: config: criticalUnits: "nginx" is not a unit name` {
		t.Errorf("bad config: %v, want the agent's own line", err)
	}
	if err := a.CheckConfig(context.Background(), []string{"/bin/sh", "-c", "x"}); err == nil {
		t.Error("a command line that is not `run` passed")
	}
}

// TestAgentSelfRunsAsUnit: the agent has a command line (and restarts its
// unit) only when its cgroup is the unit's.
func TestAgentSelfRunsAsUnit(t *testing.T) {
	args := []string{"/nix/store/x/bin/panther-agent", "run", "--config", "/etc/panther/agent.json"}
	for _, tc := range []struct {
		name, cgroup string
		in           bool
	}{
		{"unit", "0::/system.slice/panther-agent.service\n", true},
		{"nested sandbox", "0::/machine.slice/lab/system.slice/panther-agent.service\n", true},
		{"by hand", "0::/user.slice/user-0.slice/session-1.scope\n", false},
		{"another unit", "0::/system.slice/not-panther-agent.service\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r restarts
			a := newAgentSelf("panther-agent.service", args, cgroupFile(t, tc.cgroup), &fakeRunner{}, r.restart, hclog.NewNullLogger())
			if got := a.Exec() != nil; got != tc.in {
				t.Fatalf("Exec() = %q, want in unit %v", a.Exec(), tc.in)
			}
			err := a.Restart(context.Background())
			if tc.in {
				if err != nil || len(r) != 1 || r[0] != "panther-agent.service" {
					t.Errorf("Restart: %v, restarted %v", err, r)
				}
			} else if err == nil || len(r) != 0 {
				t.Errorf("Restart outside the unit: %v, restarted %v", err, r)
			}
		})
	}
}
