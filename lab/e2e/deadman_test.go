package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// The dead-man tests: a switched host must end up on a system that lets the
// operator in, whatever happens to the controller, the network, the agent or
// the host itself. Every test checks the host as a person would after the
// fact — /run/current-system, the profile's current generation as nix-env
// lists it, the boot entry, the units — plus the agent's journal record and
// that the deployment's log survived.

// dmSlack is how late after the confirmation deadline the dead-man may
// start the rollback.
const dmSlack = time.Second

// dmFinishSlack bounds when the rollback must be finished, after the
// deadline. Restoring the previous system is two nix-env calls and a real
// switch-to-configuration (daemon-reload, unit restarts): 0.3-0.7 s here,
// but up to 1.6 s was seen on a loaded two-core machine.
const dmFinishSlack = 5 * time.Second

// dmFleet is a one-host fleet ("alpha") whose first system ("good") is
// deployed and confirmed.
type dmFleet struct {
	f     *fleettest.Fleet
	h     *fleettest.Host
	first string // store path of the confirmed first system
	id    string // its deployment id
}

func newDMFleet(t *testing.T, variant string, opts fleettest.Options) *dmFleet {
	t.Helper()
	opts.Hosts = map[string]string{"alpha": variant}
	f := fleettest.New(t, opts)
	d := &dmFleet{f: f, h: f.Hosts["alpha"]}
	f.WaitReachable(t, "alpha", time.Minute)
	r, id := d.deploy(t, 0)
	if !strings.Contains(r.Stdout, `"outcome":"confirmed"`) {
		t.Fatalf("first deploy not confirmed:\n%s", r)
	}
	d.first, d.id = d.h.CurrentSystem(t), id
	if !strings.Contains(d.first, "nixos-system-alpha") {
		t.Fatalf("current system after the first deploy = %q\n%s", d.first, d.h.AgentJournal())
	}
	return d
}

// deploy runs `pantherctl deploy alpha --json --yes ...` wanting exit code
// want, and returns the run and the deployment id from its events.
func (d *dmFleet) deploy(t *testing.T, want int, args ...string) (fleettest.Result, string) {
	t.Helper()
	r := d.f.MustCtl(want, append([]string{"deploy", "alpha", "--json", "--yes", "--flake", d.f.Flake}, args...)...)
	id := fleettest.DeploymentIDFromJSON(r.Stdout)
	if id == "" {
		t.Fatalf("no deployment id in the --json output:\n%s", r)
	}
	return r, id
}

// wantSystem checks that the host runs path in every sense: it is
// /run/current-system, the profile's current generation (nix-env, inside
// the host) and the boot entry; every unit of path is installed from path
// and active; no unit only the rejected system had is left installed.
func (d *dmFleet) wantSystem(t *testing.T, path, rejected string) {
	t.Helper()
	h := d.h
	if got := h.CurrentSystem(t); got != path {
		t.Errorf("/run/current-system = %s, want %s", got, path)
	}
	if g := h.CurrentGeneration(t); g.Path != path {
		t.Errorf("current profile generation %d is %s, want %s (generations %+v)", g.Number, g.Path, path, h.Generations(t))
	}
	if got := h.BootToplevel(t); got != path {
		t.Errorf("boot entry boots %s, want %s", got, path)
	}
	units := dmUnits(t, h, path)
	if len(units) == 0 {
		t.Fatalf("%s has no units", path)
	}
	for _, u := range units {
		want, _ := os.ReadFile(h.SB.Path(filepath.Join(path, "etc/systemd/system", u)))
		if got := h.ReadFile(t, "/etc/systemd/system/"+u); got != string(want) {
			t.Errorf("/etc/systemd/system/%s is not %s's:\n%s", u, path, got)
		}
		if st := h.UnitProperty(t, u, "ActiveState"); st != "active" {
			t.Errorf("%s is %s, want active\n%s", u, st, h.SB.Journal(context.Background(), u))
		}
	}
	if rejected != "" {
		for _, u := range dmUnits(t, h, rejected) {
			if !slices.Contains(units, u) && h.ReadFile(t, "/etc/systemd/system/"+u) != "" {
				t.Errorf("%s of the rejected system is still installed", u)
			}
		}
	}
}

// dmUnits lists the service units of a lab system.
func dmUnits(t *testing.T, h *fleettest.Host, path string) []string {
	t.Helper()
	ents, err := os.ReadDir(h.SB.Path(filepath.Join(path, "etc/systemd/system")))
	if err != nil {
		t.Fatalf("units of %s: %v", path, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// wantRecord checks the journal record of a finished deployment.
func wantRecord(t *testing.T, rec *journal.Record, state journal.State, reason, prev, next string) {
	t.Helper()
	if rec.State != state {
		t.Errorf("record %s: state %s (%s), want %s", rec.ID, rec.State, rec.Reason, state)
	}
	if !strings.Contains(rec.Reason, reason) {
		t.Errorf("record %s: reason %q lacks %q", rec.ID, rec.Reason, reason)
	}
	if rec.PreviousPath != prev {
		t.Errorf("record %s: previousPath %s, want %s", rec.ID, rec.PreviousPath, prev)
	}
	if rec.NewPath != next {
		t.Errorf("record %s: newPath %s, want %s", rec.ID, rec.NewPath, next)
	}
	if rec.Finished.IsZero() {
		t.Errorf("record %s: no finish time", rec.ID)
	}
}

// wantLog checks that the agent's log of id kept the whole story: the
// lines before the event under test as well as after it.
func wantLog(t *testing.T, h *fleettest.Host, id string, wants ...string) string {
	t.Helper()
	log := h.DeploymentLog(t, id)
	for _, w := range append([]string{"[validate] started", "[build] started", "[switch] started"}, wants...) {
		if !strings.Contains(log, w) {
			t.Errorf("the log of %s lacks %q:\n%s", id, w, log)
		}
	}
	return log
}

// wantDeadman checks that the dead-man started the rollback of rec within
// dmSlack of its deadline and finished it within dmFinishSlack, and returns
// both delays.
func wantDeadman(t *testing.T, h *fleettest.Host, rec *journal.Record) (start, finish time.Duration) {
	t.Helper()
	log := h.DeploymentLog(t, rec.ID)
	began, ok := fleettest.LogTime(log, "[rollback] started")
	if !ok {
		t.Fatalf("no rollback in the log of %s:\n%s", rec.ID, log)
	}
	start, finish = began.Sub(rec.Deadline), rec.Finished.Sub(rec.Deadline)
	t.Logf("deadline %s: rollback started %+v and finished %+v after it",
		rec.Deadline.Format(time.StampMilli), start.Round(time.Millisecond), finish.Round(time.Millisecond))
	if start < 0 {
		t.Errorf("rollback started %v before the deadline", -start)
	}
	if start > dmSlack || finish > dmFinishSlack {
		t.Errorf("rollback started %v and finished %v after the deadline, want within %v and %v; log:\n%s",
			start, finish, dmSlack, dmFinishSlack, log)
	}
	return start, finish
}

// confirmUntil confirms id over conn, retrying while the agent is out of
// reach, until the agent answers or until passes.
func confirmUntil(t *testing.T, conn *client.Conn, s client.Signer, id string, until time.Time) (*agentv1.Result, error) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := conn.Confirm(ctx, s, id)
		cancel()
		code := status.Code(err)
		if err == nil || (code != codes.Unavailable && code != codes.DeadlineExceeded) || time.Now().After(until) {
			return res, err
		}
		t.Logf("confirm %s: %v; retrying", id, err)
		time.Sleep(200 * time.Millisecond)
	}
}

// killAgent kills panther-agent with SIGKILL inside the host and waits
// until systemd has restarted it and it resumed deployment id.
func (d *dmFleet) killAgent(t *testing.T, id string) {
	t.Helper()
	h := d.h
	before := h.AgentPID(t)
	h.SB.Run(t, "systemctl", "kill", "-s", "KILL", "panther-agent.service")
	deadline := time.Now().Add(30 * time.Second)
	for {
		pid := h.AgentPID(t)
		if pid != 0 && pid != before && strings.Contains(h.DeploymentLog(t, id), "agent started: resuming deployment in state awaiting") {
			t.Logf("agent pid %d killed; systemd restarted it as %d and it resumed %s", before, pid, id)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come back and resume %s (pid %d -> %d)\n%s", id, before, pid, h.AgentJournal())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// 1. The controller dies right after the switch: nobody confirms, so the
// host rolls back at the deadline.
func TestDeadmanControllerKilled(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	// Killed as soon as it hears that the switch started: from then on the
	// deployment is the agent's, and pantherctl never sees the window open.
	p := f.StartCtl(t, "deploy", "alpha", "--json", "--yes", "--confirm-timeout", "8s", "--flake", f.Flake)
	p.WaitOutput(t, "PHASE_SWITCH", 3*time.Minute)
	r := p.Kill(t)
	if r.Code != -1 {
		t.Errorf("pantherctl was not killed: %s", r)
	}
	id := fleettest.DeploymentIDFromJSON(r.Stdout)
	if id == "" {
		t.Fatalf("no deployment id in pantherctl's output:\n%s", r)
	}
	rec := h.JournalRecord(t, id)
	t.Logf("pantherctl killed while the deployment was %s", rec.State)
	if rec.State != journal.StateSwitching && rec.State != journal.StateAwaiting {
		t.Fatalf("deployment %s is %s (%s) after pantherctl was killed", id, rec.State, rec.Reason)
	}
	second := rec.NewPath

	rec = h.WaitRecord(t, rec.ID, 8*time.Second+30*time.Second, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
	wantRecord(t, rec, journal.StateRolledBack, "not confirmed within 8s", d.first, second)
	wantDeadman(t, h, rec)
	d.wantSystem(t, d.first, second)
	// Test, then boot: the unconfirmed system never entered the profile.
	if rec.PreviousGeneration != 1 || rec.NewGeneration != 0 || rec.RollbackGeneration != 0 {
		t.Errorf("generations: previous %d, new %d, rollback %d; want 1, 0, 0", rec.PreviousGeneration, rec.NewGeneration, rec.RollbackGeneration)
	}
	wantLog(t, h, rec.ID, "[confirm] awaiting confirmation", "rolling back: not confirmed", "[rollback] done", "[result] rolled-back")
	if logs, _ := filepath.Glob(filepath.Join(f.Dir, "logs", "deploy", "switch-alpha-*.log")); len(logs) < 2 {
		t.Errorf("controller logs: %v, want one per deploy", logs)
	}
}

// 2. The new system takes the host's links down: the controller cannot
// confirm, the dead-man restores the previous system (which brings the
// links up) and the host is reachable again.
func TestDeadmanCutNetwork(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "cut-network")
	r, id := d.deploy(t, 4, "--confirm-timeout", "8s")
	rec := h.JournalRecord(t, id)
	wantRecord(t, rec, journal.StateRolledBack, "not confirmed within 8s", d.first, rec.NewPath)
	if rec.NewPath == d.first || !strings.Contains(rec.NewPath, "cut_network") {
		t.Errorf("newPath %s is not the cut-network system", rec.NewPath)
	}
	wantDeadman(t, h, rec)
	d.wantSystem(t, d.first, rec.NewPath)
	log := wantLog(t, h, id, "[confirm] awaiting confirmation", "[rollback] done", "[result] rolled-back")
	_, afterRollback, _ := strings.Cut(log, "[rollback] started")
	if !strings.Contains(log, "down") || !regexp.MustCompile(`setting link \S+ up`).MatchString(afterRollback) {
		t.Errorf("the log does not show the links going down, then up in the rollback:\n%s", log)
	}
	if !strings.Contains(r.Stdout, `"outcome":"rolled back"`) {
		t.Errorf("pantherctl did not report the rollback:\n%s", r)
	}
	// pantherctl lost the stream and reattached: it must not report the
	// events it had already seen a second time.
	seen := map[string]int{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(line, `"event"`) {
			seen[line]++
		}
	}
	for line, n := range seen {
		if n > 1 {
			t.Errorf("pantherctl printed an event %d times: %s", n, line)
		}
	}

	// The tailnet path comes back once the links are up.
	st := f.WaitReachable(t, "alpha", 90*time.Second)
	if !strings.Contains(st.Stdout, d.first) {
		t.Errorf("status after the rollback does not show %s:\n%s", d.first, st)
	}
}

// 3. A unit of the new system fails to start: switch-to-configuration exits
// 4, the health check finds the unit failed since the baseline and the agent
// rolls back at once, without waiting for the window.
func TestDeadmanUnitFailRollsBackAtOnce(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "unit-fail")
	r, id := d.deploy(t, 4, "--confirm-timeout", "2m")
	if r.Elapsed > time.Minute {
		t.Errorf("pantherctl took %v: the rollback waited for the window", r.Elapsed)
	}
	rec := h.JournalRecord(t, id)
	wantRecord(t, rec, journal.StateRolledBack, "failed-unit lab-broken.service: failed since the baseline", d.first, rec.NewPath)
	if rec.SwitchExitCode == nil || *rec.SwitchExitCode != 4 {
		t.Errorf("switch exit code %v, want 4", rec.SwitchExitCode)
	}
	if rec.Phase != "health" {
		t.Errorf("failed phase %q, want health", rec.Phase)
	}
	if rec.Finished.Sub(rec.Started) > 30*time.Second || !rec.Finished.Before(rec.Deadline) {
		t.Errorf("rolled back %v after the start (deadline %s): not immediate", rec.Finished.Sub(rec.Started), rec.Deadline)
	}
	log := wantLog(t, h, id, "the following units failed: lab-broken.service", "[rollback] done", "[result] rolled-back")
	if strings.Contains(log, "awaiting confirmation") {
		t.Errorf("a failed switch opened a confirmation window:\n%s", log)
	}
	sw, _ := fleettest.LogTime(log, "exited 4")
	rb, _ := fleettest.LogTime(log, "[rollback] started")
	t.Logf("switch failed -> rollback started: %v; whole deployment %v", rb.Sub(sw).Round(time.Millisecond), rec.Finished.Sub(rec.Started).Round(time.Millisecond))
	d.wantSystem(t, d.first, rec.NewPath)
}

// 3b. A switch that never ends (it starts a oneshot waiting for ever, holding
// switch-to-configuration's lock) is stopped by systemd at the agent's
// switchTimeout, which frees the lock, and the previous system is restored;
// the transient units are gone once their end is recorded.
func TestDeadmanSwitchTimeout(t *testing.T) {
	const timeout = 3 * time.Second
	d := newDMFleet(t, "good", fleettest.Options{AgentConfig: map[string]any{"switchTimeout": timeout.String()}})
	f, h := d.f, d.h
	f.SetVariant("alpha", nixtest.HangSwitch)
	_, id := d.deploy(t, 4, "--confirm-timeout", "2m")
	rec := h.JournalRecord(t, id)
	wantRecord(t, rec, journal.StateRolledBack, "switch-to-configuration test did not finish within 3s: systemd stopped it", d.first, rec.NewPath)
	if rec.SwitchExitCode != nil {
		t.Errorf("switch exit code %d recorded for a switch stopped at its deadline", *rec.SwitchExitCode)
	}
	wantLog(t, h, id, nixtest.HangUnit, "[rollback] done", "[result] rolled-back")
	d.wantSystem(t, d.first, rec.NewPath)
	if out, err := h.SB.Exec(t.Context(), "flock", "-n", nixtest.SwitchLock, "true"); err != nil {
		t.Errorf("switch-to-configuration's lock is still held: %v %s", err, out)
	}
	// The rollback's unit is cleared just after the result goes out.
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		out := h.SB.Run(t, "systemctl", "list-units", "--all", "--plain", "--no-legend", "panther-switch-*", "panther-rollback-*", "panther-dry-activate-*", "panther-deadman-*")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("transient units left loaded:\n%s", out)
			break
		}
	}
}

// 4. An HTTP health check from the agent's config against a real web
// server: the broken web server is rolled back and the good one serves
// again.
func TestDeadmanHTTPHealthCheck(t *testing.T) {
	d := newDMFleet(t, "web-ok", fleettest.Options{HealthChecks: []map[string]any{
		{"name": "web", "type": "http", "url": "http://127.0.0.1:8080/", "retries": 2, "timeout": "2s", "interval": "500ms"},
	}})
	f, h := d.f, d.h
	webStatus := func() string {
		out, _ := h.SB.Exec(context.Background(), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://127.0.0.1:8080/")
		return strings.TrimSpace(string(out))
	}
	if s := webStatus(); s != "200" {
		t.Fatalf("web-ok answers %q", s)
	}
	okLog := h.DeploymentLog(t, d.id)
	if !strings.Contains(okLog, "[health]") || !strings.Contains(okLog, "web: ok") {
		t.Errorf("the first deploy's log shows no passing web check:\n%s", okLog)
	}

	f.SetVariant("alpha", "web-broken")
	r, id := d.deploy(t, 4)
	rec := h.JournalRecord(t, id)
	wantRecord(t, rec, journal.StateRolledBack, "health check failed", d.first, rec.NewPath)
	if rec.Phase != "health" {
		t.Errorf("failed phase %q, want health", rec.Phase)
	}
	log := wantLog(t, h, id, "[health] started", "web: FAILED", "[rollback] done", "[result] rolled-back")
	if n := strings.Count(log, "500"); n == 0 {
		t.Errorf("the log does not show the 500s:\n%s", log)
	}
	if !strings.Contains(r.Stdout, "web") {
		t.Errorf("pantherctl did not show the web check:\n%s", r)
	}
	d.wantSystem(t, d.first, "")
	if s := webStatus(); s != "200" {
		t.Errorf("after the rollback the web server answers %q, want 200", s)
	}
}

// 5. systemd restarts a SIGKILLed agent inside the window: the agent resumes
// the deployment from its journal, (a) keeps it when a confirm arrives,
// (b) rolls it back at the original deadline when none does.
func TestDeadmanAgentKilledInWindow(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	node := f.ControllerNode(t, "ctl-inproc")
	s := f.Signer(t)

	var second string
	t.Run("confirmed after restart", func(t *testing.T) {
		f.SetVariant("alpha", "good-v2")
		_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "25s")
		rec := h.JournalRecord(t, id)
		if rec.State != journal.StateAwaiting {
			t.Fatalf("after --no-confirm: %s (%s)", rec.State, rec.Reason)
		}
		second = rec.NewPath
		d.killAgent(t, id)
		conn := f.Dial(t, node, "alpha")
		res, err := confirmUntil(t, conn, s, id, rec.Deadline)
		if err != nil {
			t.Fatalf("confirm after the agent's restart: %v\n%s", err, h.AgentJournal())
		}
		if res.Outcome != agentv1.Outcome_OUTCOME_CONFIRMED {
			t.Errorf("confirm result %v", res)
		}
		t.Logf("confirmed %v before the deadline", time.Until(rec.Deadline).Round(time.Millisecond))
		// The re-armed dead-man must not fire at the old deadline.
		time.Sleep(time.Until(rec.Deadline) + dmSlack + time.Second)
		rec = h.JournalRecord(t, id)
		wantRecord(t, rec, journal.StateConfirmed, "confirmed by", d.first, second)
		wantLog(t, h, id, "[confirm] awaiting confirmation", "resuming deployment in state awaiting", "[confirm] confirmed by")
		if strings.Contains(h.DeploymentLog(t, id), "[rollback]") {
			t.Errorf("a confirmed deployment was rolled back:\n%s", h.DeploymentLog(t, id))
		}
		d.wantSystem(t, second, "")
	})
	if second == "" {
		t.FailNow()
	}

	t.Run("rolled back at the deadline after restart", func(t *testing.T) {
		f.SetVariant("alpha", "good")
		_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "15s")
		d.killAgent(t, id)
		rec := h.WaitRecord(t, id, 15*time.Second+30*time.Second, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
		wantRecord(t, rec, journal.StateRolledBack, "not confirmed within 15s", second, d.first)
		wantDeadman(t, h, rec)
		wantLog(t, h, id, "resuming deployment in state awaiting", "[rollback] done", "[result] rolled-back")
		d.wantSystem(t, second, "")
	})
}

// 6. The host reboots inside the window: it boots the previous system (the
// boot default never left it) and the agent ends the record rolled back as
// soon as it starts, long before the deadline, without a rollback switch.
func TestDeadmanHostRebooted(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "5m")
	second := h.JournalRecord(t, id).NewPath
	h.SB.Reboot(t)
	rebooted := time.Now()
	rec := h.WaitRecord(t, id, time.Minute, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
	t.Logf("rolled back %v after the reboot, %v before the deadline", rec.Finished.Sub(rebooted).Round(time.Millisecond), rec.Deadline.Sub(rec.Finished).Round(time.Second))
	wantRecord(t, rec, journal.StateRolledBack, "rebooted", d.first, second)
	if rec.Finished.After(rec.Deadline) {
		t.Errorf("rolled back after the deadline")
	}
	log := wantLog(t, h, id, "[confirm] awaiting confirmation", "resuming deployment in state awaiting", "booted the previous system", "[result] rolled-back")
	if strings.Contains(log, "[rollback] restoring") {
		t.Errorf("a rollback switch ran after the reboot:\n%s", log)
	}
	d.wantSystem(t, d.first, second)
}

// 7. The previous system fails to activate too: the agent stops, says a
// person must act and how, and keeps the record and log.
func TestDeadmanRollbackFailsNeedsManual(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	h.SB.Run(t, "sh", "-c", "mkdir -p /etc/panther-lab && touch /etc/panther-lab/fail-activation")
	f.SetVariant("alpha", "activation-fail")
	r, id := d.deploy(t, 5)
	rec := h.JournalRecord(t, id)
	wantRecord(t, rec, journal.StateManual, "rollback failed", d.first, rec.NewPath)
	wantCmds := []string{
		"nix-env -p " + fleettest.SystemProfile + " --set " + d.first,
		d.first + "/bin/switch-to-configuration switch",
	}
	if !slices.Equal(rec.RecoveryCommands, wantCmds) {
		t.Errorf("recovery commands %q, want %q", rec.RecoveryCommands, wantCmds)
	}
	out := r.Stdout + r.Stderr
	for _, w := range append([]string{"manual"}, wantCmds...) {
		if !strings.Contains(out, w) {
			t.Errorf("pantherctl output lacks %q:\n%s", w, r)
		}
	}
	wantLog(t, h, id, "activation script failed", "[rollback] started", "[rollback] FAILED", "[result] manual", "recover with: "+wantCmds[0])

	// Where it stands: the profile and the boot entry are back on the
	// previous system; so is /run/current-system (the failed activation
	// still switched the link).
	if g := h.CurrentGeneration(t); g.Path != d.first {
		t.Errorf("profile generation %d is %s, want %s", g.Number, g.Path, d.first)
	}
	if got := h.BootToplevel(t); got != d.first {
		t.Errorf("boot entry %s, want %s", got, d.first)
	}

	// The printed commands recover the host once the cause is gone.
	h.SB.Run(t, "rm", "/etc/panther-lab/fail-activation")
	for _, c := range rec.RecoveryCommands {
		h.SB.Run(t, "sh", "-c", c)
	}
	d.wantSystem(t, d.first, "")
	st := f.MustCtl(0, "status", "alpha")
	if !strings.Contains(st.Stdout, d.first) {
		t.Errorf("status after recovery:\n%s", st)
	}
}

// 8. Confirms that must not keep anything: for another deployment, for a
// deployment that does not exist, replayed, and after the deadline.
func TestDeadmanConfirmRefused(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	node := f.ControllerNode(t, "ctl-inproc")
	s := f.Signer(t)
	conn := f.Dial(t, node, "alpha")

	f.SetVariant("alpha", "good-v2")
	_, id := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "90s")
	pending := h.JournalRecord(t, id)
	second := pending.NewPath

	unchanged := func(t *testing.T, what string, before *journal.Record) {
		t.Helper()
		after := h.JournalRecord(t, before.ID)
		if after.State != before.State || after.Reason != before.Reason || !after.Updated.Equal(before.Updated) {
			t.Errorf("%s changed %s: %s (%s) -> %s (%s)", what, before.ID, before.State, before.Reason, after.State, after.Reason)
		}
	}
	confirm := func(t *testing.T, env *agentv1.SignedEnvelope) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := conn.API.Confirm(ctx, &agentv1.ConfirmRequest{Envelope: env})
		return err
	}
	sign := func(t *testing.T, host, id string) *agentv1.SignedEnvelope {
		t.Helper()
		env, err := s.Sign(&agentv1.Intent{Host: host, Action: agentv1.Action_ACTION_CONFIRM, DeploymentId: id})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	wantCode := func(t *testing.T, what string, err error, want ...codes.Code) {
		t.Helper()
		if !slices.Contains(want, status.Code(err)) {
			t.Errorf("%s: got %v, want one of %v", what, err, want)
		} else {
			t.Logf("%s: refused: %v", what, err)
		}
	}

	t.Run("another deployment", func(t *testing.T) {
		first := h.JournalRecord(t, d.id)
		wantCode(t, "confirm of the earlier, confirmed deployment", confirm(t, sign(t, "alpha", d.id)), codes.FailedPrecondition)
		unchanged(t, "confirming another deployment", first)
		wantCode(t, "confirm of a deployment that never was", confirm(t, sign(t, "alpha", "20200101T000000Z-000000")),
			codes.NotFound, codes.FailedPrecondition)
		wantCode(t, "confirm signed for another host", confirm(t, sign(t, "beta", id)), codes.PermissionDenied)
		unchanged(t, "refused confirms", pending)
	})

	t.Run("replayed", func(t *testing.T) {
		env := sign(t, "alpha", id)
		if err := confirm(t, env); err != nil {
			t.Fatalf("first use of the confirm: %v", err)
		}
		kept := h.JournalRecord(t, id)
		if kept.State != journal.StateConfirmed {
			t.Fatalf("after confirm: %s", kept.State)
		}
		wantCode(t, "the same envelope again", confirm(t, env), codes.PermissionDenied)
		unchanged(t, "a replayed confirm", kept)
		d.wantSystem(t, second, "")
	})

	t.Run("after the deadline", func(t *testing.T) {
		f.SetVariant("alpha", "good")
		_, late := d.deploy(t, 0, "--no-confirm", "--detach", "--confirm-timeout", "5s")
		rec := h.JournalRecord(t, late)
		env := sign(t, "alpha", late)
		time.Sleep(time.Until(rec.Deadline) + 20*time.Millisecond)
		wantCode(t, "a confirm just after the deadline", confirm(t, env), codes.FailedPrecondition)
		rec = h.WaitRecord(t, late, 30*time.Second, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
		wantRecord(t, rec, journal.StateRolledBack, "not confirmed within 5s", second, d.first)
		wantCode(t, "a confirm after the rollback", confirm(t, sign(t, "alpha", late)), codes.FailedPrecondition)
		unchanged(t, "a late confirm", rec)
		d.wantSystem(t, second, "")
	})
}

// dmGeneration is one row of `pantherctl rollback --list --json`.
type dmGeneration struct {
	Number       int64  `json:"number"`
	Current      bool   `json:"current"`
	StorePath    string `json:"storePath"`
	DeploymentID string `json:"deploymentId"`
	Result       string `json:"result"`
}

func dmGenerations(t *testing.T, f *fleettest.Fleet) map[int64]dmGeneration {
	t.Helper()
	r := f.MustCtl(0, "rollback", "alpha", "--list", "--json")
	out := map[int64]dmGeneration{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var g dmGeneration
		if err := json.Unmarshal([]byte(line), &g); err != nil {
			t.Fatalf("rollback --list --json line %q: %v", line, err)
		}
		out[g.Number] = g
	}
	return out
}

// 9. The happy path: confirmed deployments roll nothing back; the
// generations list says which deployment made each generation and how it
// ended; rollbacks to the previous and to a numbered generation work; an
// unknown generation is refused with the list of those that exist.
func TestDeadmanHappyPathGenerations(t *testing.T) {
	d := newDMFleet(t, "good", fleettest.Options{})
	f, h := d.f, d.h
	f.SetVariant("alpha", "good-v2")
	_, id2 := d.deploy(t, 0, "--confirm-timeout", "10s")
	second := h.CurrentSystem(t)
	for _, id := range []string{d.id, id2} {
		rec := h.JournalRecord(t, id)
		if rec.State != journal.StateConfirmed || rec.RollbackGeneration != 0 {
			t.Errorf("%s: %s, rollback generation %d", id, rec.State, rec.RollbackGeneration)
		}
		if log := wantLog(t, h, id, "[confirm] confirmed by", "[result] confirmed"); strings.Contains(log, "[rollback]") {
			t.Errorf("%s rolled back:\n%s", id, log)
		}
	}
	d.wantSystem(t, second, "")
	// Past the window nothing changes either.
	time.Sleep(time.Until(h.JournalRecord(t, id2).Deadline.Add(dmSlack)))
	if got := h.CurrentSystem(t); got != second {
		t.Fatalf("after the window: %s", got)
	}

	gens := dmGenerations(t, f)
	want := map[int64]dmGeneration{
		1: {Number: 1, StorePath: d.first, DeploymentID: d.id, Result: "confirmed"},
		2: {Number: 2, Current: true, StorePath: second, DeploymentID: id2, Result: "confirmed"},
	}
	if fmt.Sprint(gens) != fmt.Sprint(want) {
		t.Errorf("generations:\n got %+v\nwant %+v", gens, want)
	}
	table := f.MustCtl(0, "rollback", "alpha", "--list").Stdout
	t.Logf("rollback --list:\n%s", table)
	for _, id := range []string{d.id, id2} {
		if !strings.Contains(table, id) {
			t.Errorf("rollback --list does not show %s", id)
		}
	}

	// --rollback: the previous generation, as a new, confirmed generation 3.
	f.MustCtl(0, "rollback", "alpha", "--rollback", "--yes")
	d.wantSystem(t, d.first, second)
	gens = dmGenerations(t, f)
	if g := gens[3]; !g.Current || g.StorePath != d.first || g.Result != "confirmed" || g.DeploymentID == "" {
		t.Errorf("generation 3 after --rollback: %+v", g)
	}

	// --rollback 2: a numbered generation.
	f.MustCtl(0, "rollback", "alpha", "--rollback", "2", "--yes")
	d.wantSystem(t, second, d.first)
	gens = dmGenerations(t, f)
	if g := gens[4]; !g.Current || g.StorePath != second || g.Result != "confirmed" {
		t.Errorf("generation 4 after --rollback 2: %+v", g)
	}

	// An unknown generation: a clear refusal naming the ones that exist.
	r := f.Ctl("rollback", "alpha", "--rollback", "99", "--yes")
	if r.Code != 3 {
		t.Errorf("rollback to generation 99: want exit 3, got %s", r)
	}
	if msg := r.Stdout + r.Stderr; !strings.Contains(msg, "generation 99") || !strings.Contains(msg, "4, 3, 2, 1") {
		t.Errorf("the refusal does not list the generations:\n%s", r)
	}
	d.wantSystem(t, second, "")
	if n := len(h.Generations(t)); n != 4 {
		t.Errorf("%d generations after the refused rollback, want 4", n)
	}
}
