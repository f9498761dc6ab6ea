package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/cli"
	"github.com/pantheros/panther/lab/fleettest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Test, then boot, and the independent dead-man (issue 11, items 1 and 2),
// on the real fleet: in the confirm window the new system runs by
// switch-to-configuration test while the profile and the boot default stay
// on the previous system; a systemd timer rolls the host back at the
// deadline whatever happens to the agent.

// deadmanUnit is the dead-man pair of deployment id (without suffix).
func deadmanUnit(id string) string { return "panther-deadman-" + id }

// deadmanStarted is when the dead-man's service started its run (the
// timer fired, or the agent started it), from systemd's
// ExecMainStartTimestamp (microseconds, wall clock).
func deadmanStarted(t testing.TB, h *fleettest.Host, id string) time.Time {
	t.Helper()
	return unitTime(t, h, deadmanUnit(id)+".service", "ExecMainStartTimestamp")
}

// unitTime reads a timestamp property of a unit with its microseconds.
func unitTime(t testing.TB, h *fleettest.Host, unit, prop string) time.Time {
	t.Helper()
	const layout = "Mon 2006-01-02 15:04:05.000000 MST"
	out := h.SB.Run(t, "systemctl", "show", "--timestamp=us+utc", "-p", prop, "--value", unit)
	ts, err := time.Parse(layout, strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s of %s: %q: %v", prop, unit, out, err)
	}
	return ts
}

// inHealth starts a deploy with pantherctl and waits until the agent's
// health check of it has begun (the switch ended and re-armed the
// dead-man; healthSettle keeps the check going for a few seconds), and
// returns pantherctl and the deployment id.
func inHealth(t *testing.T, f *fleettest.Fleet, h *fleettest.Host, window string) (*fleettest.CtlProcess, string) {
	t.Helper()
	p := f.StartCtl(t, "deploy", "alpha", "--json", "--yes", "--confirm-timeout", window, "--flake", f.Flake)
	id := fleettest.DeploymentIDFromJSON(p.WaitOutput(t, "PHASE_SWITCH", 3*time.Minute))
	until := time.Now().Add(time.Minute)
	for !strings.Contains(h.DeploymentLog(t, id), "[health] started") {
		if time.Now().After(until) {
			t.Fatalf("no health check of %s:\n%s", id, h.DeploymentLog(t, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, id
}

// noConfirm are the flags of a deploy that leaves the window open and
// returns at once: --no-confirm, plus --detach where pantherctl has it
// (there, --no-confirm alone waits for the outcome it provokes).
func noConfirm(*fleettest.Fleet) []string {
	return []string{"--no-confirm", "--detach"}
}

// waitRunning waits until the host runs path.
func waitRunning(t *testing.T, h *fleettest.Host, path string, timeout time.Duration) {
	t.Helper()
	until := time.Now().Add(timeout)
	for h.CurrentSystem(t) != path {
		if time.Now().After(until) {
			t.Fatalf("the host still runs %s, not %s, after %v\n%s", h.CurrentSystem(t), path, timeout, h.SB.Run(t, "systemctl", "list-units", "--all", "--plain", "--no-legend", "panther-*"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// (a) In the window the boot default and the profile are the previous
// system's, the dead-man's timer is armed; the confirm moves both to the
// new system and drops the timer.
func TestTestBootWindowKeepsTheBootDefault(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	_, id := d.deploy(t, 0, append(noConfirm(f), "--confirm-timeout", "2m")...)
	rec := h.JournalRecord(t, id)
	second := rec.NewPath
	if rec.State != journal.StateAwaiting || rec.SwitchMode != "test" || !rec.ProfileDeferred || rec.DeadmanUnit != deadmanUnit(id) {
		t.Fatalf("record: %s (%s), mode %s, profile deferred %v, dead-man %q", rec.State, rec.Reason, rec.SwitchMode, rec.ProfileDeferred, rec.DeadmanUnit)
	}
	if got := h.CurrentSystem(t); got != second {
		t.Errorf("in the window the host runs %s, want the new %s", got, second)
	}
	if got := h.BootDefault(t); got != d.first {
		t.Errorf("in the window the boot default is %s, want the previous %s", got, d.first)
	}
	if g := h.CurrentGeneration(t); g.Path != d.first {
		t.Errorf("in the window the profile's generation %d is %s, want the previous %s", g.Number, g.Path, d.first)
	}
	if st := h.UnitProperty(t, deadmanUnit(id)+".timer", "ActiveState"); st != "active" {
		t.Errorf("dead-man timer %s, want active", st)
	}
	if v := h.UnitProperty(t, deadmanUnit(id)+".service", "ExecStart"); !strings.Contains(v, d.first+"/bin/switch-to-configuration") {
		t.Errorf("dead-man service runs %s, want the previous system's switch-to-configuration", v)
	}

	conn := f.Dial(t, f.ControllerNode(t, "ctl-testboot"), "alpha")
	res, err := confirmUntil(t, conn, f.Signer(t), id, rec.Deadline)
	if err != nil || res.Outcome != agentv1.Outcome_OUTCOME_CONFIRMED {
		t.Fatalf("confirm: %v %v", res, err)
	}
	if got := h.BootDefault(t); got != second {
		t.Errorf("after the confirm the boot default is %s, want %s", got, second)
	}
	rec = h.JournalRecord(t, id)
	if g := h.CurrentGeneration(t); g.Path != second || g.Number != rec.NewGeneration || rec.BootPending {
		t.Errorf("after the confirm: profile generation %d is %s; record generation %d, boot pending %v", g.Number, g.Path, rec.NewGeneration, rec.BootPending)
	}
	if ls := h.UnitProperty(t, deadmanUnit(id)+".timer", "LoadState"); ls == "loaded" {
		t.Errorf("the dead-man timer is still loaded after the confirm")
	}
	d.wantSystem(t, second, "")
	wantLog(t, h, id, "independent dead-man", "[confirm] confirmed by", "is the system profile")
}

// (b) The agent is stopped right after the switch (SIGKILL, then
// systemctl stop, in the health check) and kept down: the timer alone restores the previous system at the
// deadline; the agent back says so in the record, and pantherctl, which
// waited all along, exits 4.
func TestTestBootDeadmanAgentStopped(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{AgentConfig: map[string]any{"healthSettle": "5s"}})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	p, id := inHealth(t, f, h, "6s")
	// SIGKILL first: a graceful stop lets the agent finish its health
	// check (and pantherctl could confirm in between); then stop, which
	// cancels systemd's restart and keeps it down.
	h.SB.Run(t, "sh", "-c", "systemctl kill -s KILL panther-agent.service; systemctl stop panther-agent.service")
	rec := h.JournalRecord(t, id)
	second := rec.NewPath
	if rec.SwitchExitCode == nil || rec.State != journal.StateSwitching {
		t.Fatalf("record when the agent stopped: %s (%s), want switching with the switch's exit recorded\n%s", rec.State, rec.Phase, h.DeploymentLog(t, id))
	}
	waitRunning(t, h, d.first, 6*time.Second+30*time.Second)
	late := deadmanStarted(t, h, id).Sub(rec.Deadline)
	t.Logf("the dead-man's rollback started %v after the deadline, the agent down", late.Round(time.Millisecond))
	if late < 0 || late > dmSlack {
		t.Errorf("the dead-man started %v after the deadline, want within %v", late, dmSlack)
	}
	if st := h.UnitProperty(t, "panther-agent.service", "ActiveState"); st == "active" {
		t.Fatalf("the agent is running again: the test wants it down")
	}
	if r := h.JournalRecord(t, id); r.State.Final() {
		t.Errorf("record final (%s) while the agent is down", r.State)
	}
	h.SB.Run(t, "systemctl", "start", "panther-agent.service")
	r := p.Wait(t)
	if r.Code != cli.ExitRolledBack {
		t.Errorf("pantherctl exit %d, want %d\n%s", r.Code, cli.ExitRolledBack, r)
	}
	rec = h.WaitRecord(t, id, 30*time.Second, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
	wantRecord(t, rec, journal.StateRolledBack, "rolled back by the independent dead-man", d.first, second)
	if rec.RolledBackBy != deploy.RolledBackByDeadman {
		t.Errorf("rolled back by %q", rec.RolledBackBy)
	}
	d.wantSystem(t, d.first, second)
	if got := h.BootDefault(t); got != d.first {
		t.Errorf("boot default %s", got)
	}
	wantLog(t, h, id, "independent dead-man", "[rollback] done", "[result] rolled-back")
}

// (c) The agent crash-loops after the switch (its ExecStart replaced by a
// drop-in that fails): rolled back at the deadline all the same.
func TestTestBootDeadmanAgentCrashLoops(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{AgentConfig: map[string]any{"healthSettle": "5s"}})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	p, id := inHealth(t, f, h, "6s")
	const dropIn = "/run/systemd/system/panther-agent.service.d/crash.conf"
	h.SB.Run(t, "sh", "-c", "mkdir -p "+dropIn[:strings.LastIndex(dropIn, "/")]+" && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > "+dropIn+" && systemctl daemon-reload && systemctl kill -s KILL panther-agent.service")
	rec := h.JournalRecord(t, id)
	second := rec.NewPath
	time.Sleep(time.Second)
	if n := h.UnitProperty(t, "panther-agent.service", "NRestarts"); n == "0" {
		t.Errorf("the agent does not crash-loop: %s restarts", n)
	}
	waitRunning(t, h, d.first, 6*time.Second+30*time.Second)
	late := deadmanStarted(t, h, id).Sub(rec.Deadline)
	t.Logf("the dead-man's rollback started %v after the deadline, the agent crash-looping (%s)", late.Round(time.Millisecond), h.UnitProperty(t, "panther-agent.service", "ActiveState"))
	if late < 0 || late > dmSlack {
		t.Errorf("the dead-man started %v after the deadline, want within %v", late, dmSlack)
	}
	if st := h.UnitProperty(t, "panther-agent.service", "ActiveState"); st == "active" {
		t.Errorf("the agent is active: it should be crash-looping")
	}
	h.SB.Run(t, "sh", "-c", "rm "+dropIn+" && systemctl daemon-reload && systemctl reset-failed panther-agent.service; systemctl restart panther-agent.service")
	if r := p.Wait(t); r.Code != cli.ExitRolledBack {
		t.Errorf("pantherctl exit %d, want %d\n%s", r.Code, cli.ExitRolledBack, r)
	}
	rec = h.WaitRecord(t, id, 30*time.Second, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
	wantRecord(t, rec, journal.StateRolledBack, "rolled back by the independent dead-man", d.first, second)
	d.wantSystem(t, d.first, second)
}

// (d) A power cut in the window: the host boots its boot default, the
// previous system, by itself; the agent ends the record rolled back
// without switching anything.
func TestTestBootCrashInTheWindow(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	_, id := d.deploy(t, 0, append(noConfirm(f), "--confirm-timeout", "5m")...)
	second := h.JournalRecord(t, id).NewPath
	h.SB.Crash(t)
	if got := h.BootedSystem(t); got != d.first {
		t.Errorf("after the power cut the host booted %s, want the previous %s", got, d.first)
	}
	rec := h.WaitRecord(t, id, time.Minute, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
	wantRecord(t, rec, journal.StateRolledBack, "rebooted", d.first, second)
	if rec.RolledBackBy != deploy.RolledBackByReboot {
		t.Errorf("rolled back by %q, want reboot", rec.RolledBackBy)
	}
	log := wantLog(t, h, id, "booted the previous system", "nothing to roll back", "[result] rolled-back")
	if strings.Contains(log, "[rollback] restoring") {
		t.Errorf("a rollback switch ran after the reboot:\n%s", log)
	}
	if rec.Finished.After(rec.Deadline) {
		t.Errorf("rolled back after the deadline")
	}
	d.wantSystem(t, d.first, second)
	if gens := h.Generations(t); len(gens) != 1 {
		t.Errorf("generations %+v, want only the first: an unconfirmed system never enters the profile", gens)
	}
}

// The confirm's boot step fails (the profile's directory is read-only):
// the confirm stands, the new system runs, the boot default stays on the
// previous system and the record says so; the agent's next start does the
// boot step.
func TestTestBootConfirmWhenTheBootStepFails(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	_, id := d.deploy(t, 0, append(noConfirm(f), "--confirm-timeout", "2m")...)
	rec := h.JournalRecord(t, id)
	second := rec.NewPath
	const dir = "/nix/var/nix/profiles"
	h.SB.Run(t, "mount", "--bind", dir, dir)
	h.SB.Run(t, "mount", "-o", "remount,bind,ro", dir)
	conn := f.Dial(t, f.ControllerNode(t, "ctl-testboot"), "alpha")
	res, err := confirmUntil(t, conn, f.Signer(t), id, rec.Deadline)
	if err != nil || res.Outcome != agentv1.Outcome_OUTCOME_CONFIRMED {
		t.Fatalf("confirm: %v %v", res, err)
	}
	if !strings.Contains(res.Message, "boot default is still the previous system") {
		t.Errorf("confirm result %q does not say the boot step failed", res.Message)
	}
	rec = h.JournalRecord(t, id)
	if rec.State != journal.StateConfirmed || !rec.BootPending || rec.BootError == "" {
		t.Errorf("record %s, boot pending %v (%q)", rec.State, rec.BootPending, rec.BootError)
	}
	if got, boot := h.CurrentSystem(t), h.BootDefault(t); got != second || boot != d.first {
		t.Errorf("running %s, boot default %s; want %s and the previous %s", got, boot, second, d.first)
	}
	h.SB.Run(t, "umount", dir)
	h.RestartAgent(t)
	until := time.Now().Add(30 * time.Second)
	for h.JournalRecord(t, id).BootPending && time.Now().Before(until) {
		time.Sleep(50 * time.Millisecond)
	}
	if rec := h.JournalRecord(t, id); rec.BootPending || rec.State != journal.StateConfirmed {
		t.Fatalf("after the agent's restart: boot pending %v (%q), %s", rec.BootPending, rec.BootError, rec.State)
	}
	d.wantSystem(t, second, "")
}
