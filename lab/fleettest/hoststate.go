package fleettest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/nixtest"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// Where the agents of a fleet keep things, inside their hosts.
const (
	// SystemProfile is the hosts' system profile.
	SystemProfile = "/nix/var/nix/profiles/system"
	// BootEntry is the boot loader entry the lab's switch-to-configuration writes.
	BootEntry = "/boot/loader/entries/panther.conf"
)

// JournalRecord reads the agent's journal record of deployment id as the
// agent's own type (times and states typed), failing t if there is none.
func (h *Host) JournalRecord(t testing.TB, id string) *journal.Record {
	t.Helper()
	rec, err := h.readRecord(id)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return rec
}

func (h *Host) readRecord(id string) (*journal.Record, error) {
	b, err := os.ReadFile(h.SB.Path(filepath.Join(DeploymentsDir, id, "record.json")))
	if err != nil {
		return nil, fmt.Errorf("journal record of %s: %w", id, err)
	}
	var rec journal.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("journal record of %s: %w", id, err)
	}
	return &rec, nil
}

// WaitRecord polls deployment id's journal record until its state is one of
// states and returns it; it fails t (with the agent's journal) at timeout.
func (h *Host) WaitRecord(t testing.TB, id string, timeout time.Duration, states ...journal.State) *journal.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		rec, err := h.readRecord(id)
		if err == nil && slices.Contains(states, rec.State) {
			return rec
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("state %s (%s)", rec.State, rec.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: deployment %s not %v within %v: %s\n%s", h.Name, id, states, timeout, last, h.AgentJournal())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitDeployment polls until a deployment not in known appears in the
// journal in one of states, and returns its record.
func (h *Host) WaitDeployment(t testing.TB, known []string, timeout time.Duration, states ...journal.State) *journal.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, id := range h.Deployments(t) {
			if slices.Contains(known, id) {
				continue
			}
			if rec, err := h.readRecord(id); err == nil && slices.Contains(states, rec.State) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new deployment in %v within %v (known %v)\n%s", h.Name, states, timeout, known, h.AgentJournal())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DeploymentLog is the agent's log of deployment id ("" if it has none).
func (h *Host) DeploymentLog(t testing.TB, id string) string {
	t.Helper()
	return h.ReadFile(t, filepath.Join(DeploymentsDir, id, "log"))
}

// LogTime returns the time stamp of the first line of a deployment log
// containing substr (the agent writes "<RFC 3339 time> <text>" lines), or
// false if no line has it.
func LogTime(log, substr string) (time.Time, bool) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, substr) {
			continue
		}
		stamp, _, _ := strings.Cut(line, " ")
		if ts, err := time.Parse(time.RFC3339Nano, stamp); err == nil {
			return ts, true
		}
	}
	return time.Time{}, false
}

// Generation is one generation of a host's system profile.
type Generation struct {
	Number  int64
	Current bool
	Path    string // store path the generation's link points at
}

var generationLine = regexp.MustCompile(`^\s*(\d+)\s+\S+\s+\S+\s*(\(current\))?\s*$`)

// Generations lists the system profile's generations, oldest first, as
// `nix-env -p /nix/var/nix/profiles/system --list-generations` reports them
// inside the host.
func (h *Host) Generations(t testing.TB) []Generation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.SB.Exec(ctx, "nix-env", "-p", SystemProfile, "--list-generations")
	if err != nil {
		t.Fatalf("%s: nix-env --list-generations: %v\n%s", h.Name, err, out)
	}
	var gens []Generation
	for _, line := range strings.Split(string(out), "\n") {
		m := generationLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		link := fmt.Sprintf("%s-%d-link", SystemProfile, n)
		target, err := os.Readlink(h.SB.Path(link))
		if err != nil {
			t.Fatalf("%s: generation %d: %v", h.Name, n, err)
		}
		gens = append(gens, Generation{Number: n, Current: m[2] != "", Path: target})
	}
	return gens
}

// CurrentGeneration is the profile's current generation (failing t if
// none is marked current).
func (h *Host) CurrentGeneration(t testing.TB) Generation {
	t.Helper()
	gens := h.Generations(t)
	for _, g := range gens {
		if g.Current {
			return g
		}
	}
	t.Fatalf("%s: no current generation in %+v", h.Name, gens)
	return Generation{}
}

// BootToplevel is the system the host's boot entry boots ("" if none).
func (h *Host) BootToplevel(t testing.TB) string {
	t.Helper()
	for _, line := range strings.Split(h.ReadFile(t, BootEntry), "\n") {
		if v, ok := strings.CutPrefix(line, "toplevel "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// UnitProperty is one property of a unit inside the host (`systemctl show
// -p name --value`).
func (h *Host) UnitProperty(t testing.TB, unit, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.SB.Exec(ctx, "systemctl", "show", "-p", name, "--value", unit)
	if err != nil {
		t.Fatalf("%s: systemctl show %s %s: %v\n%s", h.Name, name, unit, err, out)
	}
	return strings.TrimSpace(string(out))
}

// AgentPID is the main PID of the host's panther-agent.service (0 if not
// running).
func (h *Host) AgentPID(t testing.TB) int {
	t.Helper()
	pid, _ := strconv.Atoi(h.UnitProperty(t, "panther-agent.service", "MainPID"))
	return pid
}

// DeploymentIDFromJSON returns the deployment id in the events of
// `pantherctl --json deploy` output ("" if none names one).
func DeploymentIDFromJSON(stdout string) string {
	for _, line := range strings.Split(stdout, "\n") {
		var v struct {
			Event struct {
				DeploymentID string `json:"deploymentId"`
			} `json:"event"`
		}
		if json.Unmarshal([]byte(line), &v) == nil && v.Event.DeploymentID != "" {
			return v.Event.DeploymentID
		}
	}
	return ""
}

// HoldSwitchLock holds switch-to-configuration's lock on the host, as a
// running nixos-rebuild or system.autoUpgrade would: every switch, boot,
// test or dry-activate exits 11 until release is called or the test ends.
func (h *Host) HoldSwitchLock(t testing.TB) (release func()) {
	t.Helper()
	return sandboxtest.HoldSwitchLock(t, h.SB)
}

// FailUnit starts a transient unit on the host that fails and keeps failing
// (see sandboxtest.FailUnit): a failure from before a deploy, which
// switch-to-configuration reports after the switch with exit 4.
func (h *Host) FailUnit(t testing.TB, unit string) {
	t.Helper()
	sandboxtest.FailUnit(t, h.SB, unit)
}

// BootDefault is the toplevel the host's boot loader entry names: the
// system its next boot brings up ("" if there is none).
func (h *Host) BootDefault(t testing.TB) string {
	t.Helper()
	for _, line := range strings.Split(h.ReadFile(t, nixtest.BootEntry), "\n") {
		if top, ok := strings.CutPrefix(line, "toplevel "); ok {
			return strings.TrimSpace(top)
		}
	}
	return ""
}

// BootedSystem is where host's /run/booted-system points ("" if nowhere).
func (h *Host) BootedSystem(t testing.TB) string {
	t.Helper()
	out, err := h.SB.Exec(context.Background(), "readlink", "-f", nixtest.BootedSystem)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
