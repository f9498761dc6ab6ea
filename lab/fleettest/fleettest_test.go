package fleettest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestInitialGeneration: with Options.InitialGeneration a host boots into
// its system as a NixOS host does (current, booted, boot default and
// profile agree), the agent unit comes from that system, a system whose
// switch would stop the agent says so in dry-activate, a system without the
// agent unit leaves the running agent alone (X-StopOnRemoval=false), and a
// reboot brings up the boot default again.
func TestInitialGeneration(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": nixtest.Good}, InitialGeneration: true})
	h := f.Hosts["alpha"]
	ctx := t.Context()

	initial := h.CurrentSystem(t)
	if !strings.HasPrefix(initial, "/nix/store/") {
		t.Fatalf("current-system = %q, want the initial system", initial)
	}
	if got := h.BootedSystem(t); got != initial {
		t.Errorf("booted-system = %q, want %q", got, initial)
	}
	if got := h.BootDefault(t); got != initial {
		t.Errorf("boot default = %q, want %q", got, initial)
	}
	if got := h.SB.Run(t, "readlink", "-f", nixtest.Profile); got != initial {
		t.Errorf("profile = %q, want %q", got, initial)
	}
	if got := h.SB.Run(t, "readlink", nixtest.Profile); got != "system-1-link" {
		t.Errorf("profile link = %q, want generation 1", got)
	}
	h.SB.Run(t, "test", "-e", initial+"/etc/systemd/system/"+nixtest.AgentUnit)
	for _, u := range nixtest.Units(nixtest.Good) {
		if st := h.SB.Run(t, "systemctl", "show", "--value", "--property=ActiveState", u); st != "active" {
			t.Errorf("%s is %s after boot", u, st)
		}
	}

	nixtest.WriteHosts(t, f.Flake, map[string]string{"alpha": nixtest.Good, "x-stops": nixtest.StopsAgent, "x-none": nixtest.NoAgent})
	n := nixtest.Nix(t)
	build := func(host string) string {
		t.Helper()
		installable, err := nix.Toplevel(nixtest.Ref(f.Flake), host)
		if err != nil {
			t.Fatal(err)
		}
		out, err := n.Build(ctx, installable, nil)
		if err != nil {
			t.Fatalf("build %s: %v", host, err)
		}
		return out
	}
	stops, none := build("x-stops"), build("x-none")

	out, _ := h.SB.Exec(ctx, stops+"/bin/switch-to-configuration", "dry-activate")
	if !strings.Contains(string(out), "would stop the following units: "+nixtest.AgentUnit) {
		t.Errorf("dry-activate of stops-agent does not stop the agent:\n%s", out)
	}
	out, _ = h.SB.Exec(ctx, none+"/bin/switch-to-configuration", "dry-activate")
	if strings.Contains(string(out), nixtest.AgentUnit) {
		t.Errorf("dry-activate of no-agent names the agent:\n%s", out)
	}

	invocation := h.SB.Run(t, "systemctl", "show", "--value", "--property=InvocationID", nixtest.AgentUnit)
	if out, err := h.SB.Exec(ctx, none+"/bin/switch-to-configuration", "test"); err != nil {
		t.Fatalf("test no-agent: %v\n%s", err, out)
	}
	if got := h.SB.Run(t, "systemctl", "show", "--value", "--property=ActiveState,InvocationID", nixtest.AgentUnit); got != "active\n"+invocation {
		t.Errorf("agent after a switch to no-agent: %q, want active and not restarted (%s)", got, invocation)
	}

	h.SB.Reboot(t)
	if got := h.CurrentSystem(t); got != initial {
		t.Errorf("after reboot current-system = %q, want the boot default %q", got, initial)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.SB.WaitUnit(wctx, nixtest.AgentUnit, "active"); err != nil {
		t.Errorf("agent after reboot: %v\n%s", err, h.AgentJournal())
	}
}
