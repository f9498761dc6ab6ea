package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/rollout"
)

// TestSwitchDoneAfterTheSwitchEnds: the agent finishes its switch phase when
// the unit starts; "switch done" must come after the activation output.
func TestSwitchDoneAfterTheSwitchEnds(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	logEv := func(ms int, line string) rollout.Event {
		return rollout.Event{Time: at(ms), Kind: rollout.EventLog, Phase: rollout.PhaseSwitch, Line: line}
	}
	started := func(ms int, p rollout.Phase) rollout.Event {
		return rollout.Event{Time: at(ms), Kind: rollout.EventPhaseStarted, Phase: p}
	}
	tests := []struct {
		name   string
		events []rollout.Event
		want   []string // in this order
	}{
		{
			name: "ends with the exit line",
			events: []rollout.Event{
				started(0, rollout.PhaseSwitch),
				{Time: at(57), Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseSwitch, OK: true, Elapsed: 57 * time.Millisecond},
				logEv(100, "activating the configuration..."),
				logEv(2500, "switch-to-configuration switch exited 0: ok"),
				started(2600, rollout.PhaseHealth),
			},
			want: []string{"==> switch", "activating the configuration", "exited 0", "switch done in 2.5s", "==> health"},
		},
		{
			name: "ends with a warning",
			events: []rollout.Event{
				started(0, rollout.PhaseSwitch),
				{Time: at(57), Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseSwitch, OK: true, Elapsed: 57 * time.Millisecond},
				logEv(100, "activating the configuration..."),
				{Time: at(900), Kind: rollout.EventWarning, Line: "rolling back: the unit vanished"},
			},
			want: []string{"==> switch", "activating the configuration", "switch done in 900ms", "warning: rolling back"},
		},
		{
			name: "a failed switch phase shows at once",
			events: []rollout.Event{
				started(0, rollout.PhaseSwitch),
				{Time: at(5), Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseSwitch, Error: "setting the profile"},
			},
			want: []string{"==> switch", "switch FAILED after 0s: setting the profile"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &reporter{c: newCLI(IO{Stdout: &out}), host: "yoga"}
			for _, ev := range tc.events {
				r.event(ev)
			}
			got := out.String()
			pos := 0
			for _, w := range tc.want {
				i := strings.Index(got[pos:], w)
				if i < 0 {
					t.Fatalf("%q missing or out of order in:\n%s", w, got)
				}
				pos += i + len(w)
			}
			if strings.Count(got, "switch done") > 1 {
				t.Errorf("switch done twice:\n%s", got)
			}
		})
	}
}

// checkAligned wants every line of a table to start its columns where the
// header does.
func checkAligned(t *testing.T, text string, titles ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var starts []int
	for _, title := range titles {
		i := strings.Index(lines[0], title)
		if i < 0 {
			t.Fatalf("header %q lacks %q", lines[0], title)
		}
		starts = append(starts, len([]rune(lines[0][:i])))
	}
	for _, l := range lines[1:] {
		rs := []rune(l)
		for i, s := range starts[1:] {
			if s < len(rs) && rs[s-1] != ' ' { // a cell ran into the next column
				t.Errorf("column %s does not start at %d in %q\n%s", titles[i+1], s, l, text)
				break
			}
		}
	}
}

func TestBatchTableKeepsAlignmentOnLongResults(t *testing.T) {
	var out bytes.Buffer
	c := newCLI(IO{Stdout: &out})
	long := strings.Repeat("health check failed: nginx.service is not active ", 4)
	rep := &rollout.Report{Hosts: []*rollout.HostReport{
		{Host: rollout.Host{Name: "alpha"}, Duration: time.Second,
			Result: &rollout.Result{Outcome: rollout.OutcomeRolledBack, Message: long, Generation: 12}},
		{Host: rollout.Host{Name: "a-very-long-host-name-beyond-the-column"}, Duration: 2 * time.Second,
			Result: &rollout.Result{Outcome: rollout.OutcomeConfirmed, Generation: 7}},
		{Host: rollout.Host{Name: "gamma"}, Err: errors.New("refused")},
	}}
	c.finishBatch(rep, map[string]hostLog{"alpha": {path: "logs/deploy/switch-alpha.log"}, "a-very-long-host-name-beyond-the-column": {path: "logs/deploy/switch-b.log"}})
	text := out.String()
	table := text[strings.Index(text, "HOST"):]
	checkAligned(t, table, "HOST", "RESULT", "GEN", "TIME", "LOG")
	if !strings.Contains(table, "…") {
		t.Errorf("long cells are not cut:\n%s", table)
	}
	for _, l := range strings.Split(strings.TrimSpace(table), "\n") {
		if len(strings.Fields(l)) < 2 {
			t.Errorf("row %q: a row is one line", l)
		}
	}
}

func TestGenerationListKeepsColumnsOnLongVersions(t *testing.T) {
	var out bytes.Buffer
	c := newCLI(IO{Stdout: &out})
	now := time.Date(2026, 11, 25, 23, 9, 0, 0, time.Local)
	c.printGenerations("yoga", []client.Generation{
		{Number: 104, Created: now, Current: true, StorePath: "/nix/store/b-v2", NixosVersion: "26.05.20261125.0123456789abcdef-with-a-very-long-suffix (Vicuna)", DeploymentID: "20261125T230906Z-c6dee5", Result: "confirmed"},
		{Number: 9, Created: now, StorePath: "/nix/store/a-good", NixosVersion: "26.05.lab-good (Panther Lab)", Result: "awaiting confirmation"},
	})
	checkAligned(t, out.String(), "GEN", "DATE", "CUR", "NIXOS VERSION", "DEPLOYMENT", "RESULT", "STORE PATH")
	if !strings.Contains(out.String(), "/nix/store/b-v2") {
		t.Errorf("store path cut:\n%s", out.String())
	}
}

func TestRawGRPCErrorsDoNotLeak(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 100.64.0.2:7443: connect: connection refused"`), "connection refused: nothing listens"},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: EOF"`), "connection was closed"},
		{status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: http2: frame too large"`), "does not speak panther's gRPC API"},
		{status.Error(codes.Internal, `connection error: desc = "transport: something new"`), "yoga: something new"},
	}
	for _, tc := range tests {
		err := client.AgentError("yoga", tc.err)
		got := agentExit("yoga", err).Error()
		if !strings.Contains(got, tc.want) {
			t.Errorf("agentExit = %q, want %q", got, tc.want)
		}
		for _, raw := range []string{"desc =", "transport:", "rpc error", `\"`} {
			if strings.Contains(got, raw) {
				t.Errorf("agentExit = %q shows gRPC's %q", got, raw)
			}
		}
		if s := rollout.ShortError(err); strings.Contains(s, "desc =") {
			t.Errorf("ShortError = %q", s)
		}
	}
}

// TestUploadLinesWaitForTheAgent: a refused request shows no upload lines;
// an accepted one shows them before the agent's first event.
func TestUploadLinesWaitForTheAgent(t *testing.T) {
	var out, logf bytes.Buffer
	r := &reporter{c: newCLI(IO{Stdout: &out}), host: "yoga", logw: &logf}
	r.lineOnceAccepted("==> upload sha256:abc (1 files, 2 bytes)")
	if out.Len() != 0 {
		t.Fatalf("shown before the agent accepted: %q", out.String())
	}
	if !strings.Contains(logf.String(), "==> upload") {
		t.Errorf("the log file lacks the upload line: %q", logf.String())
	}
	r.event(rollout.Event{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseValidate})
	got := out.String()
	if i, j := strings.Index(got, "==> upload"), strings.Index(got, "==> validate"); i < 0 || j < i {
		t.Errorf("upload line not before the first event:\n%s", got)
	}
	if strings.Count(logf.String(), "==> upload") != 1 {
		t.Errorf("upload line logged twice:\n%s", logf.String())
	}
}

func TestTableFreeLastCell(t *testing.T) {
	var out bytes.Buffer
	tbl := newTable(column{title: "HOST", max: 24}, column{title: "REACHABLE"}, column{title: "GEN"},
		column{title: "NIXOS VERSION", max: 40}, column{title: "LAST DEPLOYMENT"})
	tbl.add("alpha", "yes 50ms", "1", "26.05.lab-good (Panther Lab)", "20261207T190951Z-24239d failed")
	tbl.add("ghost", "no", "ghost is not a peer on the tailnet: check the name, or set its tailnetName")
	tbl.add("beta", "yes 52ms", "12", "26.05.lab-good-with-a-much-longer-version-string (Panther Lab)", "-")
	tbl.write(&out)
	text := out.String()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	checkAligned(t, lines[0]+"\n"+lines[1]+"\n"+lines[3]+"\n", "HOST", "REACHABLE", "GEN", "NIXOS VERSION", "LAST DEPLOYMENT")
	if !strings.HasSuffix(lines[2], "set its tailnetName") {
		t.Errorf("the free cell was cut: %q", lines[2])
	}
	if len(lines[1]) > 120 {
		t.Errorf("the free cell widened the columns:\n%s", text)
	}
}
