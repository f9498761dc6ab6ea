package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// The fault matrix: the controller killed in every phase of a deployment,
// the agent killed in every phase, the network cut after the switch and
// the host rebooted in the confirmation window. Whatever happens, a host
// must end in exactly one of two states — the new generation confirmed or
// the previous one in place (restored, or never left) — in every sense a
// person would check (/run/current-system, the profile's current
// generation, the boot entry, the units), with the agent's journal record
// in a final state and its log ending with the result.
//
// Each group of cases shares one fleet and runs its cases in order, each
// starting from the base system; the groups run in parallel. Helpers carry
// an "ft" prefix: every e2e test shares this package.

// ftEnd is where a case must leave the host.
type ftEnd int

const (
	ftPrevious ftEnd = iota // the previous generation: restored, or never left
	ftNew                   // the new generation, confirmed
)

func (e ftEnd) String() string {
	if e == ftNew {
		return "new generation confirmed"
	}
	return "previous generation"
}

// ftFault is what strikes a deployment.
type ftFault int

const (
	ftKillCtl      ftFault = iota // SIGKILL to pantherctl
	ftKillAgent                   // systemctl kill -s KILL panther-agent.service inside the host
	ftCutNet                      // the host's link goes down, back up once the agent decided
	ftReboot                      // the host reboots (shut down cleanly from outside)
	ftRebootInside                // an operator's `systemctl reboot` inside the host
	ftPowerCut                    // every process of the host killed at once, then a boot
	ftStopAgent                   // `systemctl stop panther-agent`; started again by the test (ftCase.down)
)

// ftMoment is when a fault strikes.
type ftMoment int

const (
	ftAtUpload ftMoment = iota // the agent is receiving the source
	ftAtLog                    // a line (ftCase.line) appeared in the new deployment's log
	ftAtPrompt                 // pantherctl asks whether to switch
	ftAtWindow                 // the agent awaits confirmation (pantherctl frozen at ftCase.line)
)

// ftCase is one cell of the matrix.
type ftCase struct {
	name    string
	variant string // what the deployment deploys
	salt    bool   // build variant afresh (a salted store path)
	prompt  bool   // no --yes: pantherctl has a terminal and asks
	at      ftMoment
	line    string // ftAtLog, ftAtWindow: the log line that marks the moment
	fault   ftFault

	end    ftEnd
	state  journal.State // the record's final state; "" when no deployment may exist
	reason string        // in the record's reason
	phase  string        // the record's phase
	exit   int           // pantherctl's exit code; -1 when the case kills it
	// deadman: the rollback is the dead-man's, at the deadline.
	deadman bool
	// within bounds the time from the fault to the record's final state
	// (0: no bound beyond the case's timeouts).
	within time.Duration
	// down, for ftStopAgent: how long the agent stays stopped; 0 keeps it
	// down until the host runs the previous system again (the independent
	// dead-man rolled it back), then starts it.
	down time.Duration
}

// ftGroup is a set of cases sharing one fleet.
type ftGroup struct {
	name   string
	settle string        // the agents' healthSettle: the health phase lasts this long
	window time.Duration // --confirm-timeout of every case
	cases  []ftCase
}

// ftOutcome is one case's result, for the summary table.
type ftOutcome struct {
	order       int // of the group
	group, name string
	end         string
	state       journal.State
	exit        int
	took        time.Duration // from pantherctl's start until it ended and the record was final
	decided     time.Duration // from the fault to the record's final state
	learned     time.Duration // from the record's final state to pantherctl's exit (-1: killed)
}

// Log lines that mark phases (the agent logs "[<phase>] started" as each
// begins; the slow variants' own lines show the step is under way).
const (
	ftBuildStarted  = "[build] started"
	ftDryStarted    = "[dry-activate] started"
	ftSwitchPaused  = "lab: slow switch: pausing the activation"
	ftHealthStarted = "[health] started"
)

func ftGroups() []ftGroup {
	const window = 8 * time.Second
	return []ftGroup{
		{
			name: "controller killed", settle: "0s", window: window,
			cases: []ftCase{
				{name: "upload", variant: nixtest.GoodV2, at: ftAtUpload, fault: ftKillCtl,
					end: ftPrevious, exit: -1},
				{name: "build", variant: nixtest.SlowBuild, salt: true, at: ftAtLog, line: ftBuildStarted, fault: ftKillCtl,
					end: ftPrevious, state: journal.StateFailed, phase: "build", reason: "the controller went away during build", exit: -1,
					within: nixtest.SlowBuildDelay - time.Second}, // noticed in ~4 s (gRPC keepalive): the build is cut short
				{name: "dry-activate", variant: nixtest.SlowDry, at: ftAtLog, line: ftDryStarted, fault: ftKillCtl,
					end: ftPrevious, state: journal.StateFailed, phase: "dry-activate", reason: "the controller went away during dry-activate", exit: -1,
					within: nixtest.SlowDryDelay - time.Second},
				// The agent awaits approval past the controller's death,
				// until its approval timeout (the window here).
				{name: "prompt", variant: nixtest.GoodV2, prompt: true, at: ftAtPrompt, fault: ftKillCtl,
					end: ftPrevious, state: journal.StateNotApproved, phase: "approve", reason: "not approved within 8s; nothing was changed", exit: -1},
				{name: "switch", variant: nixtest.SlowSwitch, at: ftAtLog, line: ftSwitchPaused, fault: ftKillCtl,
					end: ftPrevious, state: journal.StateRolledBack, phase: "confirm", reason: "not confirmed within 8s", exit: -1, deadman: true},
				{name: "confirm window", variant: nixtest.SlowSwitch, at: ftAtWindow, line: ftSwitchPaused, fault: ftKillCtl,
					end: ftPrevious, state: journal.StateRolledBack, phase: "confirm", reason: "not confirmed within 8s", exit: -1, deadman: true},
			},
		},
		{
			// The health phase lasts the 2s settle, long enough to strike in.
			// The window leaves pantherctl time to notice that the agent it
			// followed is gone: its gRPC keepalive takes 10-13 s.
			name: "agent killed", settle: "2s", window: 30 * time.Second,
			cases: []ftCase{
				{name: "build", variant: nixtest.SlowBuild, salt: true, at: ftAtLog, line: ftBuildStarted, fault: ftKillAgent,
					end: ftPrevious, state: journal.StateFailed, phase: "build", reason: "the agent stopped before the switch", exit: 3,
					within: 10 * time.Second}, // as soon as the agent is back
				{name: "dry-activate", variant: nixtest.SlowDry, at: ftAtLog, line: ftDryStarted, fault: ftKillAgent,
					end: ftPrevious, state: journal.StateFailed, phase: "dry-activate", reason: "the agent stopped before the switch", exit: 3,
					within: 10 * time.Second},
				{name: "switch", variant: nixtest.SlowSwitch, at: ftAtLog, line: ftSwitchPaused, fault: ftKillAgent,
					end: ftNew, state: journal.StateConfirmed, phase: "confirm", reason: "confirmed by", exit: 0},
				{name: "health", variant: nixtest.GoodV2, at: ftAtLog, line: ftHealthStarted, fault: ftKillAgent,
					end: ftNew, state: journal.StateConfirmed, phase: "confirm", reason: "confirmed by", exit: 0},
				{name: "confirm window", variant: nixtest.GoodV2, at: ftAtWindow, line: ftHealthStarted, fault: ftKillAgent,
					end: ftNew, state: journal.StateConfirmed, phase: "confirm", reason: "confirmed by", exit: 0},
			},
		},
		{
			name: "host", settle: "2s", window: window,
			cases: []ftCase{
				{name: "network cut after the switch", variant: nixtest.GoodV2, at: ftAtLog, line: ftHealthStarted, fault: ftCutNet,
					end: ftPrevious, state: journal.StateRolledBack, phase: "confirm", reason: "not confirmed within 8s", exit: 4, deadman: true},
				{name: "reboot in the confirm window", variant: nixtest.GoodV2, at: ftAtWindow, line: ftHealthStarted, fault: ftReboot,
					end: ftPrevious, state: journal.StateRolledBack, phase: "confirm", reason: "booted the previous system", exit: 4},
			},
		},
		{
			// The operator's reboot in the phases TestShutdownIsNotAFailure
			// (shutdown_test.go) leaves out: dry-activate, the switch, health,
			// the window and the rollback are there. Not a cell: a reboot during
			// the upload, after which pantherctl may upload again to the host
			// that came back and the deploy proceeds (seen) or report the lost
			// upload, depending on how the stream ended; the power cut below
			// strikes the upload deterministically.
			name: "reboot inside", settle: "2s", window: window,
			cases: []ftCase{
				{name: "build", variant: nixtest.SlowBuild, salt: true, at: ftAtLog, line: ftBuildStarted, fault: ftRebootInside,
					end: ftPrevious, state: journal.StateFailed, phase: "build", reason: "the host rebooted during build; nothing was changed", exit: 3},
			},
		},
		{
			// A power cut: nothing is told, nothing is shut down. Health and
			// the rollback are in TestShutdownIsNotAFailure, the window in
			// TestTestThenBoot.
			name: "power cut", settle: "2s", window: window,
			cases: []ftCase{
				{name: "upload", variant: nixtest.GoodV2, at: ftAtUpload, fault: ftPowerCut,
					end: ftPrevious, exit: ftUploadLostExit},
				{name: "build", variant: nixtest.SlowBuild, salt: true, at: ftAtLog, line: ftBuildStarted, fault: ftPowerCut,
					end: ftPrevious, state: journal.StateFailed, phase: "build", reason: "the host rebooted during build; nothing was changed", exit: 3},
				{name: "dry-activate", variant: nixtest.SlowDry, at: ftAtLog, line: ftDryStarted, fault: ftPowerCut,
					end: ftPrevious, state: journal.StateFailed, phase: "dry-activate", reason: "the host rebooted during dry-activate; nothing was changed", exit: 3},
				{name: "switch", variant: nixtest.SlowSwitch, at: ftAtLog, line: ftSwitchPaused, fault: ftPowerCut,
					end: ftPrevious, state: journal.StateRolledBack, phase: "switch", reason: "booted the previous system", exit: 4},
			},
		},
		{
			// The agent stopped by systemctl: for a few seconds (an operator's
			// restart by hand), or in the window for good — then only the
			// independent dead-man (a systemd timer) can roll back.
			name: "agent stopped", settle: "2s", window: 15 * time.Second,
			cases: []ftCase{
				{name: "build", variant: nixtest.SlowBuild, salt: true, at: ftAtLog, line: ftBuildStarted, fault: ftStopAgent, down: 3 * time.Second,
					end: ftPrevious, state: journal.StateFailed, phase: "build", reason: "the agent stopped before the switch", exit: 3},
				{name: "dry-activate", variant: nixtest.SlowDry, at: ftAtLog, line: ftDryStarted, fault: ftStopAgent, down: 3 * time.Second,
					end: ftPrevious, state: journal.StateFailed, phase: "dry-activate", reason: "the agent stopped before the switch", exit: 3},
				{name: "switch", variant: nixtest.SlowSwitch, at: ftAtLog, line: ftSwitchPaused, fault: ftStopAgent, down: 3 * time.Second,
					end: ftNew, state: journal.StateConfirmed, phase: "confirm", reason: "confirmed by", exit: 0},
				{name: "window, kept down", variant: nixtest.GoodV2, at: ftAtWindow, line: ftHealthStarted, fault: ftStopAgent,
					end: ftPrevious, state: journal.StateRolledBack, phase: "confirm", reason: "independent dead-man", exit: 4},
			},
		},
	}
}

// ftUploadLostExit is pantherctl's exit when the host goes away while it
// uploads the source: nothing was started on the host.
const ftUploadLostExit = 1

func TestFaultMatrix(t *testing.T) {
	var mu sync.Mutex
	var outcomes []ftOutcome
	start := time.Now()
	t.Cleanup(func() { ftReport(t, outcomes, time.Since(start)) })
	for i, g := range ftGroups() {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel() // its own fleet
			x := newFTFleet(t, g.settle)
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					o := x.run(t, g, tc)
					o.order, o.group, o.name = i, g.name, tc.name
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				})
				if t.Failed() {
					// The host may be anywhere: later cases would only
					// report the same failure again.
					t.FailNow()
				}
			}
			// After the last fault the operator still gets in.
			if st := x.f.WaitReachable(t, "alpha", time.Minute); !strings.Contains(st.Stdout, x.h.CurrentSystem(t)) {
				t.Errorf("status does not show the current system:\n%s", st)
			}
		})
	}
}

// ftReport logs the matrix: one line per case.
func ftReport(t *testing.T, outcomes []ftOutcome, wall time.Duration) {
	sort.SliceStable(outcomes, func(i, j int) bool { return outcomes[i].order < outcomes[j].order })
	var b strings.Builder
	fmt.Fprintf(&b, "fault matrix (%d cases, wall time %v):\n", len(outcomes), wall.Round(time.Second))
	fmt.Fprintf(&b, "  %-18s %-30s %-26s %-14s %-5s %-8s %-13s %s\n", "GROUP", "CASE", "END", "RECORD", "EXIT", "TOOK", "FAULT->FINAL", "FINAL->CTL")
	for _, o := range outcomes {
		state, decided := string(o.state), o.decided.Round(100*time.Millisecond).String()
		if state == "" {
			state, decided = "(none)", "-"
		} else if o.decided <= 0 {
			decided = "before it"
		}
		learned := o.learned.Round(100 * time.Millisecond).String()
		if o.learned < 0 {
			learned = "-"
		}
		fmt.Fprintf(&b, "  %-18s %-30s %-26s %-14s %-5d %-8v %-13s %s\n", o.group, o.name, o.end, state, o.exit,
			o.took.Round(100*time.Millisecond), decided, learned)
	}
	t.Log(b.String())
}

// ftFleet is a one-host fleet whose host runs the base system (good).
type ftFleet struct {
	f    *fleettest.Fleet
	h    *fleettest.Host
	dm   *dmFleet // for its host checks
	base string   // store path of the base system
}

func newFTFleet(t *testing.T, settle string) *ftFleet {
	t.Helper()
	f := fleettest.New(t, fleettest.Options{
		Hosts:       map[string]string{"alpha": nixtest.Good},
		AgentConfig: map[string]any{"healthSettle": settle},
	})
	x := &ftFleet{f: f, h: f.Hosts["alpha"]}
	x.dm = &dmFleet{f: f, h: x.h}
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	x.base = x.h.CurrentSystem(t)
	if !strings.Contains(x.base, "lab_good") {
		t.Fatalf("base system %q\n%s", x.base, x.h.AgentJournal())
	}
	return x
}

// reset puts the host back on the base system, as an operator would: by
// deploying it and confirming.
func (x *ftFleet) reset(t *testing.T) {
	t.Helper()
	if x.h.CurrentSystem(t) == x.base {
		return
	}
	x.f.SetVariant("alpha", nixtest.Good)
	x.f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", x.f.Flake)
	if got := x.h.CurrentSystem(t); got != x.base {
		t.Fatalf("reset: current system %s, want the base %s", got, x.base)
	}
}

// run runs one case and checks where it left the host.
func (x *ftFleet) run(t *testing.T, g ftGroup, tc ftCase) ftOutcome {
	f, h := x.f, x.h
	x.reset(t)
	x.wantQuiet(t)
	before := plStateOf(t, h)
	gens := len(h.Generations(t))
	known := h.Deployments(t)
	sources := ftSources(t, h)

	variant := tc.variant
	if tc.salt {
		variant = nixtest.Salted(variant, rand.Text())
	}
	f.SetVariant("alpha", variant)
	if tc.at == ftAtUpload {
		// A large source keeps the agent receiving for a while.
		ballast := filepath.Join(f.Flake, "ballast.bin")
		b := make([]byte, 96<<20)
		rand.Read(b)
		if err := os.WriteFile(ballast, b, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(ballast)
	}
	args := []string{"deploy", "alpha", "--json", "--confirm-timeout", g.window.String(), "--flake", f.Flake}
	if !tc.prompt {
		args = append(args, "--yes")
	} else {
		args = append(args, "--approval-timeout", g.window.String())
	}
	p := ftStartCtl(t, f, tc.prompt, args...)

	// Wait for the moment.
	var id string
	switch tc.at {
	case ftAtUpload:
		ftWaitStaging(t, h, p)
	case ftAtPrompt:
		p.waitStderr(t, "[y/N]", 2*time.Minute)
		id = ftNewDeployment(t, h, known)
	case ftAtLog, ftAtWindow:
		id = ftWaitLog(t, h, p, known, tc.line)
	}
	if tc.at == ftAtWindow {
		// Freeze pantherctl so that it cannot confirm, and strike once the
		// window is open.
		p.signal(t, syscall.SIGSTOP)
		h.WaitRecord(t, id, time.Minute, journal.StateAwaiting)
		t.Logf("%s awaits confirmation; pantherctl frozen", id)
	}

	// Strike.
	struck := time.Now()
	var res fleettest.Result
	killed := false
	switch tc.fault {
	case ftKillCtl:
		res, killed = p.kill(t), true
	case ftKillAgent:
		ftKillAgentNow(t, h)
	case ftCutNet:
		h.SB.CutNetwork(t)
		t.Logf("network of %s cut", h.Name)
	case ftReboot:
		h.SB.Reboot(t)
	case ftRebootInside:
		h.WaitBack(t, h.RebootFromInside(t), 2*time.Minute)
		t.Logf("%s rebooted from inside", h.Name)
	case ftPowerCut:
		h.SB.Crash(t)
		t.Logf("%s lost power and booted again", h.Name)
	case ftStopAgent:
		ftStopAgentFor(t, h, tc.down, before.Current, g.window)
	}
	t.Logf("%s struck", tc.name)

	// Let it play out. A frozen pantherctl wakes once the agent decided,
	// except when the agent was killed: then once it resumed the window.
	frozen := tc.at == ftAtWindow && !killed
	if frozen && tc.fault == ftKillAgent {
		ftWaitLogLine(t, h, id, "resuming deployment in state awaiting")
		p.signal(t, syscall.SIGCONT)
		frozen = false
	}
	var rec *journal.Record
	decided := time.Duration(0)
	if id != "" {
		rec = h.WaitRecord(t, id, g.window+2*time.Minute, ftFinalStates()...)
		decided = rec.Finished.Sub(struck)
		t.Logf("%s: %s (%s) %v after the fault", id, rec.State, rec.Reason, decided.Round(time.Millisecond))
		if tc.within > 0 && decided > tc.within {
			t.Errorf("%s ended %v after the fault, want within %v", id, decided.Round(time.Millisecond), tc.within)
		}
	}
	if tc.fault == ftCutNet {
		h.SB.RestoreNetwork(t)
		t.Logf("network of %s restored", h.Name)
	}
	if frozen {
		p.signal(t, syscall.SIGCONT)
	}
	if !killed {
		res = p.wait(t, g.window+3*time.Minute)
	}
	took := time.Since(p.start)

	// Where it ended.
	if res.Code != tc.exit {
		t.Errorf("pantherctl: exit %d, want %d\n%s", res.Code, tc.exit, res)
	}
	if tc.at == ftAtUpload {
		ftWantUploadAbandoned(t, h, known, sources)
	}
	switch {
	case tc.state == "":
		if now := h.Deployments(t); !slices.Equal(now, known) {
			t.Errorf("deployments %v appeared, want none", ftAdded(now, known))
		}
	default:
		if ids := ftAdded(h.Deployments(t), known); len(ids) != 1 || ids[0] != id {
			t.Errorf("new deployments %v, want just %s", ids, id)
		}
		rec = ftWantRecord(t, h, id, tc)
	}
	switch {
	case tc.end == ftNew:
		x.dm.wantSystem(t, rec.NewPath, before.Current)
		if n := len(h.Generations(t)); n != gens+1 {
			t.Errorf("%d generations, want %d (the new one)", n, gens+1)
		}
	case rec != nil && rec.State == journal.StateRolledBack:
		// Switched (switch-to-configuration test), then restored: the
		// unconfirmed system never entered the profile.
		x.dm.wantSystem(t, before.Current, rec.NewPath)
		if rec.PreviousPath != before.Current {
			t.Errorf("record: previousPath %s, want %s", rec.PreviousPath, before.Current)
		}
		if n := len(h.Generations(t)); n != gens || rec.NewGeneration != 0 {
			t.Errorf("generations %+v (record's %d): want none added", h.Generations(t), rec.NewGeneration)
		}
	default:
		// Never switched: nothing changed.
		plUnchanged(t, h, before)
		x.dm.wantSystem(t, before.Current, "")
	}
	if tc.deadman {
		wantDeadman(t, h, rec)
	}
	x.wantQuiet(t)

	o := ftOutcome{end: tc.end.String(), exit: res.Code, took: took, decided: decided, learned: -1}
	if rec != nil {
		o.state = rec.State
		if !killed {
			o.learned = p.start.Add(res.Elapsed).Sub(rec.Finished)
		}
	}
	return o
}

// ftFinalStates are the states a deployment ends in.
func ftFinalStates() []journal.State {
	return []journal.State{journal.StateBuilt, journal.StateDryActivated, journal.StateBootScheduled,
		journal.StateConfirmed, journal.StateRolledBack, journal.StateFailed, journal.StateManual, journal.StateNotApproved}
}

// ftWantRecord checks the journal record and the log of a finished
// deployment and returns the record.
func ftWantRecord(t *testing.T, h *fleettest.Host, id string, tc ftCase) *journal.Record {
	t.Helper()
	rec := h.JournalRecord(t, id)
	if rec.State != tc.state || !strings.Contains(rec.Reason, tc.reason) {
		t.Errorf("record %s: %s (%s), want %s (%s)", id, rec.State, rec.Reason, tc.state, tc.reason)
	}
	if rec.Phase != tc.phase {
		t.Errorf("record %s: phase %q, want %q", id, rec.Phase, tc.phase)
	}
	if !rec.State.Final() || rec.Finished.IsZero() {
		t.Errorf("record %s: %s, finished %v: not final", id, rec.State, rec.Finished)
	}
	log := h.DeploymentLog(t, id)
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "[result] "+string(tc.state)) {
		t.Errorf("the log of %s does not end with its result (%s):\n%s", id, tc.state, log)
	}
	if !strings.Contains(log, "[validate] started") {
		t.Errorf("the log of %s lost its beginning:\n%s", id, log)
	}
	return rec
}

// wantQuiet checks that the agent is idle: every deployment in a final
// state and no switch or rollback unit left running.
func (x *ftFleet) wantQuiet(t *testing.T) {
	t.Helper()
	for _, id := range x.h.Deployments(t) {
		if rec := x.h.JournalRecord(t, id); !rec.State.Final() {
			t.Errorf("deployment %s is still %s", id, rec.State)
		}
	}
	out, _ := x.h.SB.Exec(t.Context(), "systemctl", "list-units", "--all", "--no-legend", "--plain", "panther-switch-*", "panther-rollback-*")
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && (f[2] == "active" || f[2] == "activating") {
			t.Errorf("unit left running: %s", l)
		}
	}
}

// ftAdded lists the ids in now that are not in known.
func ftAdded(now, known []string) []string {
	var out []string
	for _, id := range now {
		if !slices.Contains(known, id) {
			out = append(out, id)
		}
	}
	return out
}

// ftNewDeployment is the one deployment not in known.
func ftNewDeployment(t *testing.T, h *fleettest.Host, known []string) string {
	t.Helper()
	ids := ftAdded(h.Deployments(t), known)
	if len(ids) != 1 {
		t.Fatalf("new deployments %v, want one", ids)
	}
	return ids[0]
}

// ftWaitLog waits until a deployment not in known has line in its log and
// returns its id; it fails t if pantherctl ends first.
func ftWaitLog(t *testing.T, h *fleettest.Host, p *ftCtl, known []string, line string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, id := range ftAdded(h.Deployments(t), known) {
			if strings.Contains(h.DeploymentLog(t, id), line) {
				t.Logf("%s: %q", id, line)
				return id
			}
		}
		if p.exited() {
			r := p.wait(t, time.Second)
			t.Fatalf("pantherctl ended before %q: %s\n%s", line, r, h.AgentJournal())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deployment logged %q\n%s", line, h.AgentJournal())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ftWaitLogLine waits until deployment id's log has line.
func ftWaitLogLine(t *testing.T, h *fleettest.Host, id, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(h.DeploymentLog(t, id), line) {
		if time.Now().After(deadline) {
			t.Fatalf("the log of %s lacks %q:\n%s", id, line, h.DeploymentLog(t, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ftKillAgentNow kills panther-agent with SIGKILL inside the host and
// waits until systemd started it again.
func ftKillAgentNow(t *testing.T, h *fleettest.Host) {
	t.Helper()
	before := h.AgentPID(t)
	h.SB.Run(t, "systemctl", "kill", "-s", "KILL", "panther-agent.service")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid := h.AgentPID(t); pid != 0 && pid != before {
			t.Logf("agent pid %d killed; systemd restarted it as %d", before, pid)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come back after SIGKILL\n%s", h.AgentJournal())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ftStopAgentFor stops panther-agent inside the host and starts it again
// after down; with down 0, only once the host runs previous again (the
// independent dead-man's rollback), bounded by the window and a minute.
func ftStopAgentFor(t *testing.T, h *fleettest.Host, down time.Duration, previous string, window time.Duration) {
	t.Helper()
	h.SB.Run(t, "systemctl", "stop", "panther-agent.service")
	t.Logf("agent stopped")
	if down > 0 {
		time.Sleep(down)
	} else {
		waitRunning(t, h, previous, window+time.Minute)
		t.Logf("the host runs the previous system again with the agent stopped")
	}
	h.SB.Run(t, "systemctl", "start", "panther-agent.service")
	t.Logf("agent started again")
}

// ftSources lists the agent's stored sources and staging directories.
func ftSources(t *testing.T, h *fleettest.Host) []string {
	t.Helper()
	ents, err := os.ReadDir(h.SB.Path(plSourcesDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// ftWaitStaging waits until the agent is receiving a source (its staging
// directory exists).
func ftWaitStaging(t *testing.T, h *fleettest.Host, p *ftCtl) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for _, s := range ftSources(t, h) {
			if strings.HasPrefix(s, ".put-") {
				t.Logf("the agent is receiving the source into %s", s)
				return
			}
		}
		if p.exited() {
			r := p.wait(t, time.Second)
			t.Fatalf("pantherctl ended before the agent received anything: %s", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never received the source")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ftWantUploadAbandoned checks that an interrupted upload left nothing: no
// staging directory (once the agent noticed), no stored source, no
// deployment.
func ftWantUploadAbandoned(t *testing.T, h *fleettest.Host, known, sources []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := ftSources(t, h)
		if slices.Equal(now, sources) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("sources after the interrupted upload: %v, want %v", now, sources)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if now := h.Deployments(t); !slices.Equal(now, known) {
		t.Errorf("deployments %v appeared", ftAdded(now, known))
	}
}

// ftCtl is a pantherctl running in the background that a case acts on:
// it reads what pantherctl printed so far (stderr too: the prompt), freezes,
// wakes or kills it. fleettest.StartCtl cannot give pantherctl a terminal
// or send it other signals than SIGKILL; should it learn to, this can go.
type ftCtl struct {
	args  []string
	cmd   *exec.Cmd
	start time.Time
	tty   *os.File // the terminal's controlling side, when pantherctl has one

	mu          sync.Mutex
	out, errOut bytes.Buffer

	done chan struct{} // closed once pantherctl ended and res is set
	res  fleettest.Result
}

// ftWriter appends to one of ftCtl's buffers.
type ftWriter struct {
	c   *ftCtl
	buf *bytes.Buffer
}

func (w ftWriter) Write(b []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.buf.Write(b)
}

// ftStartCtl starts pantherctl with args in the fleet's directory. With
// terminal, its stdin is a pseudo-terminal nobody types on: pantherctl
// (which asks only when stdin is a terminal) asks and waits for ever. It is
// killed when t ends.
func ftStartCtl(t *testing.T, f *fleettest.Fleet, terminal bool, args ...string) *ftCtl {
	t.Helper()
	c := &ftCtl{args: args, done: make(chan struct{})}
	c.cmd = exec.Command(f.Bin.Ctl, args...)
	c.cmd.Dir, c.cmd.Env = f.Dir, f.Env()
	c.cmd.Stdout, c.cmd.Stderr = ftWriter{c, &c.out}, ftWriter{c, &c.errOut}
	if terminal {
		tty, term, err := fleettest.OpenPTY()
		if err != nil {
			t.Fatalf("a terminal for pantherctl: %v", err)
		}
		c.tty, c.cmd.Stdin = tty, term
		defer term.Close() // pantherctl has its own
	}
	c.start = time.Now()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting pantherctl: %v", err)
	}
	go func() { // owned by c: cleanup waits for it
		err := c.cmd.Wait()
		c.mu.Lock()
		c.res = fleettest.Result{Stdout: c.out.String(), Stderr: c.errOut.String(), Elapsed: time.Since(c.start)}
		c.mu.Unlock()
		if ee, ok := err.(*exec.ExitError); ok {
			c.res.Code = ee.ExitCode() // -1 when a signal ended it
		} else if err != nil {
			c.res.Code = -1
			c.res.Stderr += "\n" + err.Error()
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		if c.tty != nil {
			c.tty.Close()
		}
	})
	t.Logf("pantherctl %s: pid %d", strings.Join(args, " "), c.cmd.Process.Pid)
	return c
}

func (c *ftCtl) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitStderr waits until pantherctl wrote substr to stderr.
func (c *ftCtl) waitStderr(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		exited := c.exited()
		c.mu.Lock()
		stderr := c.errOut.String()
		c.mu.Unlock()
		if strings.Contains(stderr, substr) {
			return
		}
		if exited {
			t.Fatalf("pantherctl ended before writing %q: %s", substr, c.res)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pantherctl did not write %q within %v:\n%s", substr, timeout, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to pantherctl (SIGSTOP freezes it, SIGCONT wakes it).
func (c *ftCtl) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil && !c.exited() {
		t.Fatalf("%v to pantherctl: %v", sig, err)
	}
	t.Logf("pantherctl: %v", sig)
}

// kill kills pantherctl with SIGKILL and returns what it did.
func (c *ftCtl) kill(t *testing.T) fleettest.Result {
	t.Helper()
	c.signal(t, syscall.SIGKILL)
	return c.wait(t, 10*time.Second)
}

// wait waits for pantherctl to end, failing t after timeout.
func (c *ftCtl) wait(t *testing.T, timeout time.Duration) fleettest.Result {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("pantherctl %s still running after %v\n--- stdout\n%s--- stderr\n%s", strings.Join(c.args, " "), timeout, c.out.String(), c.errOut.String())
	}
	t.Logf("pantherctl %s: exit %d in %v", strings.Join(c.args, " "), c.res.Code, c.res.Elapsed.Round(time.Millisecond))
	return c.res
}
