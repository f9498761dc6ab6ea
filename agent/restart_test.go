package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/activation"
)

func TestSelfRestartOnlyWhenTheUnitChanged(t *testing.T) {
	unitFile := filepath.Join(t.TempDir(), "panther-agent.service")
	os.WriteFile(unitFile, []byte("[Service]\nExecStart=/nix/store/aaa-panther/bin/panther-agent run\n"), 0o644)
	var mu sync.Mutex
	execStart := "ExecStart={ path=/nix/store/aaa-panther/bin/panther-agent ; argv[]=/nix/store/aaa-panther/bin/panther-agent run ; ignore_errors=no ; start_time=[x] ; pid=12 }"
	f := &activation.FakeRunner{Respond: func(argv []string) ([]string, int, error) {
		mu.Lock()
		defer mu.Unlock()
		if argv[1] == "show" {
			return []string{"LoadState=loaded", "FragmentPath=" + unitFile, "DropInPaths=", execStart, "Environment="}, 0, nil
		}
		return nil, 0, nil
	}}
	r := newSelfRestarter(context.Background(), "panther-agent.service", f, hclog.NewNullLogger())
	r.delay = 0
	if r.initial == "" {
		t.Fatal("no fingerprint of a loaded unit")
	}

	// The agent's own restart changes pid and start time: not a new version.
	mu.Lock()
	execStart = strings.Replace(execStart, "pid=12", "pid=99", 1)
	mu.Unlock()
	r.afterConfirm("d1")
	for _, c := range f.Calls {
		if strings.Contains(c, "restart") {
			t.Fatalf("restarted although only runtime fields changed: %v", f.Calls)
		}
	}

	// A new package in the unit file: restart once confirmed.
	os.WriteFile(unitFile, []byte("[Service]\nExecStart=/nix/store/bbb-panther/bin/panther-agent run\n"), 0o644)
	r.afterConfirm("d2")
	last := f.Calls[len(f.Calls)-1]
	if last != "systemctl restart --no-block panther-agent.service" {
		t.Errorf("last call %q, want a non-blocking restart of the unit", last)
	}
}

func TestSelfRestartNotUnderSystemd(t *testing.T) {
	f := &activation.FakeRunner{Respond: func(argv []string) ([]string, int, error) {
		return []string{"LoadState=not-found"}, 0, nil
	}}
	r := newSelfRestarter(context.Background(), "panther-agent.service", f, hclog.NewNullLogger())
	r.delay = 0
	r.afterConfirm("d1")
	if len(f.Calls) != 1 {
		t.Errorf("calls = %v, want only the initial show", f.Calls)
	}
}
