package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/lab/fleettest"
)

// TestAgentServesOnlyItsFlakeHost: panther.json maps host alpha to beta's
// tailnet name (a tailnetName typo). pantherctl then asks beta's agent, with
// a request signed for beta, to build alpha's configuration. The agent
// refuses it before anything is built, in every mode (switch, build only,
// dry run, boot), with exit 6 and a message naming both attributes; neither
// host keeps a record or changes its system.
func TestAgentServesOnlyItsFlakeHost(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good", "beta": "good"}})
	// "web" is an inventory name for alpha's agent: every command resolves it.
	b, err := json.Marshal(map[string]any{"hosts": map[string]inventory.Host{"alpha": {TailnetName: "beta"}, "web": {TailnetName: "alpha"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Flake, inventory.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	alpha, beta := f.Hosts["alpha"], f.Hosts["beta"]
	systems := map[string]string{"alpha": alpha.CurrentSystem(t), "beta": beta.CurrentSystem(t)}
	records := map[string][]string{"alpha": alpha.Deployments(t), "beta": beta.Deployments(t)}

	for _, mode := range [][]string{{"--yes"}, {"--build-only"}, {"--dry-run"}, {"--boot", "--yes"}} {
		args := append([]string{"deploy", "alpha", "--flake", f.Flake}, mode...)
		r := f.MustCtl(6, args...)
		for _, s := range []string{"nixosConfigurations.beta", "nixosConfigurations.alpha", "flakeHost", "tailnetName"} {
			if !strings.Contains(r.Stderr+r.Stdout, s) {
				t.Errorf("%v: output does not name %q\n%s", mode, s, r)
			}
		}
	}
	for _, h := range []*fleettest.Host{alpha, beta} {
		if got := h.CurrentSystem(t); got != systems[h.Name] {
			t.Errorf("%s: current system %q, was %q", h.Name, got, systems[h.Name])
		}
		if got := h.Deployments(t); !slices.Equal(got, records[h.Name]) {
			t.Errorf("%s: deployments %q, were %q", h.Name, got, records[h.Name])
		}
	}
	// beta's own configuration is still served.
	f.MustCtl(0, "deploy", "beta", "--build-only", "--flake", f.Flake)

	// rollback and logs resolve names through the inventory as deploy and
	// status do (they used to dial "web", which is no tailnet peer).
	for _, args := range [][]string{
		{"status", "web", "--flake", f.Flake},
		{"rollback", "web", "--list", "--flake", f.Flake},
		{"logs", "web", "--list", "--flake", f.Flake},
	} {
		if r := f.Ctl(args...); r.Code != 0 {
			t.Errorf("%v: exit %d, want 0 (web is alpha's agent per panther.json)\n%s", args, r.Code, r)
		}
	}
}

// TestStateDirOneRunAtATime: while one pantherctl uses the fleet's
// --state-dir (a deploy, frozen mid-way so that it surely still holds it),
// a second one — a read-only status too — fails at once with exit 1,
// naming the first by pid and command; once the first is done the state
// dir is free again.
func TestStateDirOneRunAtATime(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	p := f.StartCtl(t, "deploy", "alpha", "--build-only", "--json", "--flake", f.Flake)
	p.WaitOutput(t, "PHASE_", 3*time.Minute)
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "alpha"}, {"deploy", "alpha", "--build-only", "--flake", f.Flake}} {
		r := f.MustCtl(1, args...)
		for _, s := range []string{"pid " + strconv.Itoa(p.Pid()), "deploy alpha --build-only", "--state-dir"} {
			if !strings.Contains(r.Stderr, s) {
				t.Errorf("%v: stderr does not say %q\n%s", args, s, r)
			}
		}
		if r.Elapsed > 10*time.Second {
			t.Errorf("%v took %v: the second run must fail at once", args, r.Elapsed)
		}
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if r := p.Wait(t); r.Code != 0 {
		t.Fatalf("the first run: %s", r)
	}
	f.MustCtl(0, "status", "alpha")
}
