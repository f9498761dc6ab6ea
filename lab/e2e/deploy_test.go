package e2e

import (
	"strings"
	"testing"

	"github.com/pantheros/panther/lab/fleettest"
)

func TestDeployConfirmAndRollbackList(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	alpha := f.Hosts["alpha"]

	r := f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if !strings.Contains(r.Stdout, "result: confirmed") {
		t.Errorf("deploy output lacks the confirmation:\n%s", r)
	}
	first := alpha.CurrentSystem(t)
	if !strings.Contains(first, "nixos-system-alpha") {
		t.Fatalf("current system after deploy = %q\n%s", first, alpha.AgentJournal())
	}

	f.SetVariant("alpha", "good-v2")
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	second := alpha.CurrentSystem(t)
	if second == first {
		t.Fatalf("second deploy did not change the system (%s)", second)
	}

	r = f.MustCtl(0, "rollback", "alpha", "--list")
	t.Logf("generations:\n%s", r.Stdout)
	if !strings.Contains(r.Stdout, "confirmed") || strings.Count(r.Stdout, "\n") < 3 {
		t.Errorf("rollback --list:\n%s", r)
	}

	f.MustCtl(0, "rollback", "alpha", "--rollback", "1", "--yes")
	if got := alpha.CurrentSystem(t); got != first {
		t.Errorf("after rollback to 1: current %s, want %s", got, first)
	}
	r = f.MustCtl(0, "status", "alpha")
	if !strings.Contains(r.Stdout, first) {
		t.Errorf("status does not show the current system:\n%s", r)
	}
}
