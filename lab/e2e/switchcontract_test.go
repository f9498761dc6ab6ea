package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/cli"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// How the agent judges what a NixOS-like switch-to-configuration answers,
// on a real systemd host, one deploy after the other on one host:
//   - a unit failing before the switch makes s-t-c exit 4, which the agent
//     judges against its baseline: reported, confirmed;
//   - another switch holding s-t-c's lock: refused before the profile;
//   - a new kernel (after a reboot, so that /run/booted-system is set):
//     switched, with "reboot required" in summary and result;
//   - switch inhibitors refusing: only the boot default, never a switch;
//   - a new init interface: s-t-c sets the boot default and exits 100:
//     reboot-required (pantherctl exit 7), no rollback.
func TestSwitchContract(t *testing.T) {
	// The variants are built on the host by its agent: no build users.
	d := newDMFleet(t, "good", fleettest.Options{AgentConfig: map[string]any{
		"nixExtraConfig": "sandbox = false\nsubstituters =\nbuild-users-group =",
	}})
	f, h := d.f, d.h

	t.Run("exit 4 for a unit failed before the switch", func(t *testing.T) {
		sandboxtest.FailUnit(t, h.SB, "lab-prefail.service")
		defer h.SB.Exec(context.Background(), "systemctl", "stop", "lab-prefail.service")
		f.SetVariant("alpha", "good-v2")
		r, id := d.deploy(t, cli.ExitOK)
		rec := h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateConfirmed, "confirmed", d.first, rec.NewPath)
		if rec.SwitchExitCode == nil || *rec.SwitchExitCode != 4 {
			t.Errorf("switch exit code %v, want 4 (s-t-c counts every failed unit)", rec.SwitchExitCode)
		}
		if !slices.Contains(rec.BaselineFailed, "lab-prefail.service") || !slices.Contains(rec.PreviouslyFailed, "lab-prefail.service") {
			t.Errorf("baseline %q, previously failed %q: want lab-prefail.service in both", rec.BaselineFailed, rec.PreviouslyFailed)
		}
		wantLog(t, h, id, "the following units failed: lab-prefail.service", "failed before the switch already", "[result] confirmed")
		if !strings.Contains(r.Stdout, "failed before the switch already (not held against this deployment): lab-prefail.service") {
			t.Errorf("pantherctl's result does not report the unit failed before:\n%s", r.Stdout)
		}
		d.first = h.CurrentSystem(t)
	})

	t.Run("switch lock held", func(t *testing.T) {
		release := sandboxtest.HoldSwitchLock(t, h.SB)
		defer release()
		f.SetVariant("alpha", "good")
		gen := h.CurrentGeneration(t)
		_, id := d.deploy(t, cli.ExitFailed)
		rec := h.JournalRecord(t, id)
		// dry-activate takes the lock too: the deploy stops there.
		if rec.State != journal.StateFailed || !strings.Contains(rec.Reason, "another switch is running on the host") {
			t.Errorf("record %s (%s), want failed: another switch is running", rec.State, rec.Reason)
		}
		if g := h.CurrentGeneration(t); g.Number != gen.Number || h.CurrentSystem(t) != d.first {
			t.Errorf("generation %d (was %d), system %s: the profile or the system changed", g.Number, gen.Number, h.CurrentSystem(t))
		}
	})

	t.Run("new kernel", func(t *testing.T) {
		// Boot the system the profile holds: /run/booted-system is set.
		h.SB.Reboot(t)
		f.WaitReachable(t, "alpha", 2*time.Minute)
		if got := h.CurrentSystem(t); got != d.first {
			t.Fatalf("after the reboot the host runs %s, want %s", got, d.first)
		}
		f.SetVariant("alpha", "new-kernel")
		r, id := d.deploy(t, cli.ExitOK)
		rec := h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateConfirmed, "confirmed", d.first, rec.NewPath)
		if !slices.Contains(rec.RebootRequired, "kernel") {
			t.Errorf("record reboot required %q, want kernel", rec.RebootRequired)
		}
		if !strings.Contains(r.Stdout, `"rebootRequired":["kernel"`) {
			t.Errorf("summary and result do not say a reboot is required:\n%s", r.Stdout)
		}
		d.first = h.CurrentSystem(t)
	})
	t.Run("switch inhibitors refuse", func(t *testing.T) {
		f.SetVariant("alpha", "inhibited")
		_, id := d.deploy(t, cli.ExitRebootRequired)
		rec := h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateRebootRequired, "inhibitors refused", d.first, rec.NewPath)
		if rec.SwitchMode != "boot" {
			t.Errorf("switch mode %q, want boot (never a forced switch)", rec.SwitchMode)
		}
		if h.CurrentSystem(t) != d.first {
			t.Errorf("current system %s, want %s still running", h.CurrentSystem(t), d.first)
		}
	})

	t.Run("exit 100: reboot required", func(t *testing.T) {
		f.SetVariant("alpha", "reboot-required")
		r, id := d.deploy(t, cli.ExitRebootRequired)
		rec := h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateRebootRequired, "not activated", d.first, rec.NewPath)
		if h.CurrentSystem(t) != d.first {
			t.Errorf("current system %s, want %s still running", h.CurrentSystem(t), d.first)
		}
		if got := h.BootToplevel(t); got != rec.NewPath {
			t.Errorf("boot entry boots %s, want the new %s", got, rec.NewPath)
		}
		if log := h.DeploymentLog(t, id); strings.Contains(log, "[rollback]") {
			t.Errorf("a reboot-required switch was rolled back:\n%s", log)
		}
		if !strings.Contains(r.Stdout, `"notActivatable"`) {
			t.Errorf("the summary does not say the system cannot be activated live:\n%s", r.Stdout)
		}
	})

}

// TestSwitchContractAgentUnit: on hosts whose agent unit lives in the
// system (as on NixOS), a configuration that would stop the agent or drop
// its unit is refused before anything changes, unless --force; forced, the
// agent survives losing its unit file (X-StopOnRemoval=false, as the NixOS
// module sets it) and confirms.
func TestSwitchContractAgentUnit(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{InitialGeneration: true})
	f, h := d.f, d.h
	gen := h.CurrentGeneration(t)

	for _, tc := range []struct{ variant, reason string }{
		{"stops-agent", "dry-activate would stop panther-agent.service"},
		{"no-agent", "the new system has no panther-agent.service"},
	} {
		t.Run(tc.variant+" refused", func(t *testing.T) {
			f.SetVariant("alpha", tc.variant)
			r, id := d.deploy(t, cli.ExitFailed)
			rec := h.JournalRecord(t, id)
			if rec.State != journal.StateFailed || !strings.Contains(rec.Reason, tc.reason) || !strings.Contains(rec.Reason, "--force") {
				t.Errorf("record %s (%s), want failed: %s ... --force", rec.State, rec.Reason, tc.reason)
			}
			if !strings.Contains(r.Stdout, `"stopsAgent"`) {
				t.Errorf("the summary does not say the agent would be stopped:\n%s", r.Stdout)
			}
			if g := h.CurrentGeneration(t); g.Number != gen.Number || h.CurrentSystem(t) != d.first {
				t.Errorf("generation %d (was %d), system %s: something changed", g.Number, gen.Number, h.CurrentSystem(t))
			}
		})
	}

	t.Run("no-agent forced", func(t *testing.T) {
		f.SetVariant("alpha", "no-agent")
		_, id := d.deploy(t, cli.ExitOK, "--force")
		rec := h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateConfirmed, "confirmed", d.first, rec.NewPath)
		if st := h.UnitProperty(t, "panther-agent.service", "ActiveState"); st != "active" {
			t.Errorf("panther-agent.service is %s after its unit file went away, want active (X-StopOnRemoval=false)", st)
		}
	})
}
