package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// The fleet tests deploy to several real agents at once through the real
// pantherctl: host selection by @tag and --all, --jobs, --canary,
// --keep-going, multi-host status, logs of past deployments and --json.
// What happened on each host is read from the agents' own journal records,
// not inferred from pantherctl's output or from wall time.

// flHosts are the fleet's hosts, sorted: the order pantherctl deploys them
// in, so alpha is the canary and the first host of a --jobs 1 batch.
var flHosts = []string{"alpha", "beta", "gamma", "delta"}

// flInventory is the fleet's panther.json: two servers, one laptop and one
// host without a tag.
var flInventory = map[string]inventory.Host{
	"alpha": {Tags: []string{"servers"}},
	"beta":  {Tags: []string{"servers"}},
	"gamma": {Tags: []string{"laptops"}},
}

// TestFleet boots one fleet of four hosts (booting one costs most of a
// test's time) and runs the multi-host behaviours against it in order.
// Every subtest sets the variants it needs and compares the agents'
// journals before and after, so it does not depend on what ran before.
func TestFleet(t *testing.T) {
	hosts := map[string]string{}
	for _, h := range flHosts {
		hosts[h] = nixtest.Good
	}
	t0 := time.Now()
	f := fleettest.New(t, fleettest.Options{Hosts: hosts})
	t.Logf("fleet of %d hosts up in %v", len(flHosts), time.Since(t0).Round(time.Millisecond))
	b, err := json.MarshalIndent(map[string]any{"hosts": flInventory}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Flake, inventory.FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	x := &flFleet{Fleet: f}

	t.Run("TagSelectsOnlyTaggedHosts", x.tagSelects)
	t.Run("JSONDeploy", x.jsonDeploy)
	t.Run("JobsBoundConcurrency", x.jobs)
	t.Run("CanaryFailureStopsTheRest", x.canaryFails)
	t.Run("CanarySuccessLetsTheRestProceed", x.canarySucceeds)
	t.Run("StopAfterFirstFailure", x.stopAfterFailure)
	t.Run("KeepGoing", x.keepGoing)
	t.Run("OnePromptPerBatch", x.prompt)
	t.Run("DryRunAllChangesNothing", x.dryRun)
	t.Run("StatusManyHosts", x.status)
	t.Run("LogsOfPastDeployments", x.logs)
	// Last: the offline host's path takes seconds to come back.
	t.Run("HostOffline", x.offline)
}

type flFleet struct {
	*fleettest.Fleet
}

// setVariants sets every host's variant: want[host], else def.
func (x *flFleet) setVariants(def string, want map[string]string) {
	for _, h := range flHosts {
		v, ok := want[h]
		if !ok {
			v = def
		}
		x.SetVariant(h, v)
	}
}

// snapshot is every host's journal listing.
func (x *flFleet) snapshot(t *testing.T) map[string][]string {
	t.Helper()
	s := map[string][]string{}
	for _, h := range flHosts {
		s[h] = x.Hosts[h].Deployments(t)
	}
	return s
}

// added returns, per host, the deployments that are not in before, read
// from the agents' journals, by start time.
func (x *flFleet) added(t *testing.T, before map[string][]string) map[string][]*journal.Record {
	t.Helper()
	out := map[string][]*journal.Record{}
	for _, h := range flHosts {
		for _, id := range x.Hosts[h].Deployments(t) {
			if !slices.Contains(before[h], id) {
				out[h] = append(out[h], flRecord(t, x.Hosts[h], id))
			}
		}
		// IDs name their second only: two in one second sort by chance.
		sort.Slice(out[h], func(i, j int) bool { return out[h][i].Started.Before(out[h][j].Started) })
	}
	return out
}

// flRecord reads a journal record as the agent's own type.
func flRecord(t *testing.T, h *fleettest.Host, id string) *journal.Record {
	t.Helper()
	raw := h.ReadFile(t, fleettest.DeploymentsDir+"/"+id+"/record.json")
	var rec journal.Record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		t.Fatalf("%s: record %s: %v (%q)", h.Name, id, err, raw)
	}
	return &rec
}

// wantAttempted checks that exactly the hosts in states got one new
// deployment each, in the given final state, and that no other host got any.
func (x *flFleet) wantAttempted(t *testing.T, added map[string][]*journal.Record, states map[string]journal.State) {
	t.Helper()
	for _, h := range flHosts {
		recs := added[h]
		want, ok := states[h]
		switch {
		case !ok && len(recs) > 0:
			t.Errorf("%s was not selected but got deployment %s (%s)", h, recs[0].ID, recs[0].State)
		case ok && len(recs) != 1:
			t.Errorf("%s: %d new deployments, want 1\n%s", h, len(recs), x.Hosts[h].AgentJournal())
		case ok && recs[0].State != want:
			t.Errorf("%s: deployment %s is %s (%s: %s), want %s", h, recs[0].ID, recs[0].State, recs[0].Phase, recs[0].Reason, want)
		}
	}
}

// flTable parses the per-host table pantherctl prints last: host → row.
// It fails t unless the table is the end of stdout.
func flTable(t *testing.T, r fleettest.Result) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	head := -1
	for i, l := range lines {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "HOST" && f[1] == "RESULT" {
			head = i
		}
	}
	if head < 0 {
		t.Fatalf("no per-host table in the output:\n%s", r)
	}
	rows := map[string]string{}
	for _, l := range lines[head+1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			t.Fatalf("blank line inside the table:\n%s", r)
		}
		if _, dup := rows[f[0]]; dup {
			t.Fatalf("host %s twice in the table:\n%s", f[0], r)
		}
		rows[f[0]] = l
	}
	return rows
}

// wantTable checks that the table has exactly one row per host in want and
// that each row contains want[host].
func wantTable(t *testing.T, r fleettest.Result, want map[string]string) {
	t.Helper()
	rows := flTable(t, r)
	for h, w := range want {
		row, ok := rows[h]
		if !ok {
			t.Errorf("no table row for %s:\n%s", h, r.Stdout)
			continue
		}
		if !strings.Contains(row, w) {
			t.Errorf("table row of %s = %q, want it to say %q", h, row, w)
		}
	}
	for h := range rows {
		if _, ok := want[h]; !ok {
			t.Errorf("table has a row for %s, which was not selected: %q", h, rows[h])
		}
	}
}

// flSummary is the last JSON line pantherctl prints per host of a deploy.
type flSummary struct {
	Summary  bool   `json:"summary"`
	Host     string `json:"host"`
	Outcome  string `json:"outcome"`
	Result   string `json:"result"`
	ExitCode int    `json:"exitCode"`
	Log      string `json:"log"`
}

// flEvent is one event line of `pantherctl --json deploy`.
type flEvent struct {
	Host  string         `json:"host"`
	Event map[string]any `json:"event"`
}

// flParseJSON splits --json deploy output into events and summaries; every
// stdout line must be one JSON object of either kind.
func flParseJSON(t *testing.T, r fleettest.Result) (map[string][]flEvent, map[string]flSummary) {
	t.Helper()
	events := map[string][]flEvent{}
	sums := map[string]flSummary{}
	for _, line := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &probe); err != nil {
			t.Fatalf("--json printed a line that is not a JSON object: %q (%v)\n%s", line, err, r)
		}
		if _, ok := probe["summary"]; ok {
			var s flSummary
			if err := json.Unmarshal([]byte(line), &s); err != nil || !s.Summary || s.Host == "" {
				t.Fatalf("bad summary line %q: %v", line, err)
			}
			if _, dup := sums[s.Host]; dup {
				t.Fatalf("two summaries for %s:\n%s", s.Host, r.Stdout)
			}
			sums[s.Host] = s
			continue
		}
		var e flEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Host == "" || e.Event == nil {
			t.Fatalf("line is neither an event nor a summary: %q (%v)", line, err)
		}
		if _, ok := sums[e.Host]; ok {
			t.Errorf("event for %s after its summary: %q", e.Host, line)
		}
		events[e.Host] = append(events[e.Host], e)
	}
	return events, sums
}

func (x *flFleet) deploy(t *testing.T, want int, args ...string) fleettest.Result {
	t.Helper()
	return x.MustCtl(want, append(append([]string{"deploy"}, args...), "--flake", x.Flake)...)
}

// tagSelects: `deploy @servers --yes` deploys alpha and beta, leaves gamma
// and delta alone and ends with the per-host table.
func (x *flFleet) tagSelects(t *testing.T) {
	x.setVariants(nixtest.Good, nil)
	before := x.snapshot(t)
	untouched := map[string]string{"gamma": x.Hosts["gamma"].CurrentSystem(t), "delta": x.Hosts["delta"].CurrentSystem(t)}

	r := x.deploy(t, 0, "@servers", "--yes")

	x.wantAttempted(t, x.added(t, before), map[string]journal.State{"alpha": journal.StateConfirmed, "beta": journal.StateConfirmed})
	wantTable(t, r, map[string]string{"alpha": "confirmed", "beta": "confirmed"})
	for _, h := range []string{"alpha", "beta"} {
		if cur := x.Hosts[h].CurrentSystem(t); !strings.Contains(cur, "nixos-system-"+h) {
			t.Errorf("%s runs %q after the deploy", h, cur)
		}
	}
	for h, was := range untouched {
		if cur := x.Hosts[h].CurrentSystem(t); cur != was {
			t.Errorf("%s is not tagged servers but its system changed: %q → %q", h, was, cur)
		}
		if strings.Contains(r.Stdout, h+":") {
			t.Errorf("output mentions %s, which is not tagged servers:\n%s", h, r.Stdout)
		}
	}
}

// jsonDeploy: `--json deploy` prints only JSON lines — each host's events,
// then one summary per host whose log names the controller-side log.
func (x *flFleet) jsonDeploy(t *testing.T) {
	x.setVariants(nixtest.GoodV2, nil)
	before := x.snapshot(t)

	r := x.deploy(t, 0, "@servers", "--yes", "--json")

	added := x.added(t, before)
	x.wantAttempted(t, added, map[string]journal.State{"alpha": journal.StateConfirmed, "beta": journal.StateConfirmed})
	events, sums := flParseJSON(t, r)
	if len(sums) != 2 {
		t.Errorf("want summaries for alpha and beta, got %v", sums)
	}
	for _, h := range []string{"alpha", "beta"} {
		s := sums[h]
		if s.Outcome != "confirmed" || s.ExitCode != 0 || s.Result != "confirmed" {
			t.Errorf("%s summary: %+v", h, s)
		}
		if b, err := os.ReadFile(filepath.Join(x.Dir, s.Log)); s.Log == "" || err != nil || !strings.Contains(string(b), "result: confirmed") {
			t.Errorf("%s summary names log %q: %v\n%s", h, s.Log, err, b)
		}
		if len(added[h]) != 1 {
			continue
		}
		id := added[h][0].ID
		phases := map[string]bool{}
		for _, e := range events[h] {
			if got := e.Event["deploymentId"]; got != id {
				t.Errorf("%s: event of deployment %v, want %s: %v", h, got, id, e.Event)
			}
			if ps, ok := e.Event["phaseStarted"].(map[string]any); ok {
				phases[ps["phase"].(string)] = true
			}
		}
		if !phases["PHASE_BUILD"] || !phases["PHASE_SWITCH"] {
			t.Errorf("%s: events started phases %v, want build and switch among them", h, phases)
		}
	}
	for _, h := range []string{"gamma", "delta"} {
		if len(events[h]) > 0 {
			t.Errorf("events for %s, which was not selected", h)
		}
	}
}

// flSpan is one deployment's time on its host, from the agent's journal.
type flSpan struct {
	host          string
	start, finish time.Time
}

// flSpans are the new deployments' spans, by start time; each host must
// have exactly one, confirmed.
func (x *flFleet) flSpans(t *testing.T, added map[string][]*journal.Record) []flSpan {
	t.Helper()
	var spans []flSpan
	for _, h := range flHosts {
		if len(added[h]) != 1 || added[h][0].State != journal.StateConfirmed || added[h][0].Finished.IsZero() {
			t.Fatalf("%s: want one finished confirmed deployment, got %+v\n%s", h, added[h], x.Hosts[h].AgentJournal())
		}
		rec := added[h][0]
		spans = append(spans, flSpan{host: h, start: rec.Started, finish: rec.Finished})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	return spans
}

// maxOverlap is the largest number of spans running at one instant.
func maxOverlap(spans []flSpan) int {
	best := 0
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			// o runs at s.start (starts are the only candidates for a maximum).
			if !o.start.After(s.start) && o.finish.After(s.start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func flFormatSpans(spans []flSpan) string {
	var b strings.Builder
	t0 := spans[0].start
	for _, s := range spans {
		b.WriteString(s.host + " " + s.start.Sub(t0).Round(time.Millisecond).String() + " → " + s.finish.Sub(t0).Round(time.Millisecond).String() + "\n")
	}
	return b.String()
}

// jobs: with a switch that takes nixtest.SlowSwitchDelay on every host,
// --jobs 1 runs the four deployments one after another and --jobs 3 runs
// three at once, never four — as the agents' journals time them.
func (x *flFleet) jobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		jobs string
		salt string
	}{
		{name: "one", jobs: "1", salt: "jobs1"},
		{name: "three", jobs: "3", salt: "jobs3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A salt gives each run a store path of its own, so every host
			// really switches (and pauses) again.
			x.setVariants(nixtest.Salted(nixtest.SlowSwitch, tc.salt), nil)
			before := x.snapshot(t)
			r := x.deploy(t, 0, "--all", "--yes", "--jobs", tc.jobs)
			spans := x.flSpans(t, x.added(t, before))
			got := maxOverlap(spans)
			t.Logf("--jobs %s: pantherctl took %v; deployments on the agents (max %d at once):\n%s", tc.jobs, r.Elapsed.Round(time.Millisecond), got, flFormatSpans(spans))
			for _, s := range spans {
				if d := s.finish.Sub(s.start); d < nixtest.SlowSwitchDelay {
					t.Errorf("%s: deployment took %v, less than the slow switch's %v: did it switch?", s.host, d, nixtest.SlowSwitchDelay)
				}
			}
			want := map[string]int{"1": 1, "3": 3}[tc.jobs]
			if got != want {
				t.Errorf("--jobs %s: %d deployments ran at once, want %d\n%s", tc.jobs, got, want, flFormatSpans(spans))
			}
			wantTable(t, r, map[string]string{"alpha": "confirmed", "beta": "confirmed", "gamma": "confirmed", "delta": "confirmed"})
		})
	}
}

// canaryFails: the canary (alpha, first by name) fails to build; nothing
// else is attempted, the rest are reported skipped, the exit is 3.
func (x *flFleet) canaryFails(t *testing.T) {
	x.setVariants(nixtest.Good, map[string]string{"alpha": nixtest.BuildFail})
	before := x.snapshot(t)

	r := x.deploy(t, 3, "--all", "--canary", "1", "--yes", "--json")

	x.wantAttempted(t, x.added(t, before), map[string]journal.State{"alpha": journal.StateFailed})
	_, sums := flParseJSON(t, r)
	if s := sums["alpha"]; s.Outcome != "failed" || s.ExitCode != 3 || !strings.Contains(s.Result, "build") {
		t.Errorf("alpha (the canary) summary: %+v", s)
	}
	for _, h := range []string{"beta", "gamma", "delta"} {
		if s := sums[h]; s.Outcome != "skipped" || s.ExitCode == 0 || !strings.Contains(s.Result, "canary alpha") {
			t.Errorf("%s summary after the canary failed: %+v", h, s)
		}
	}
}

// canarySucceeds: a confirmed canary lets the others proceed, and only
// after it finished.
func (x *flFleet) canarySucceeds(t *testing.T) {
	x.setVariants(nixtest.GoodV2, nil)
	before := x.snapshot(t)

	r := x.deploy(t, 0, "--all", "--canary", "1", "--yes")

	spans := x.flSpans(t, x.added(t, before))
	t.Logf("canary then the rest:\n%s", flFormatSpans(spans))
	if spans[0].host != "alpha" {
		t.Errorf("first deployment on %s, want the canary alpha", spans[0].host)
	}
	for _, s := range spans[1:] {
		if !s.start.After(spans[0].finish) {
			t.Errorf("%s started at %v, before the canary was confirmed at %v", s.host, s.start, spans[0].finish)
		}
	}
	wantTable(t, r, map[string]string{"alpha": "confirmed", "beta": "confirmed", "gamma": "confirmed", "delta": "confirmed"})
}

// stopAfterFailure: with --jobs 1 and without --keep-going, the first
// host's failure means no other host is started.
func (x *flFleet) stopAfterFailure(t *testing.T) {
	x.setVariants(nixtest.Good, map[string]string{"alpha": nixtest.BuildFail})
	before := x.snapshot(t)

	r := x.deploy(t, 3, "--all", "--jobs", "1", "--yes")

	x.wantAttempted(t, x.added(t, before), map[string]journal.State{"alpha": journal.StateFailed})
	skipped := "skipped: not started after an earlier failure"
	wantTable(t, r, map[string]string{"alpha": "failed in build", "beta": skipped, "gamma": skipped, "delta": skipped})
}

// keepGoing: the same batch with --keep-going attempts every host, and the
// table shows each one's result.
func (x *flFleet) keepGoing(t *testing.T) {
	x.setVariants(nixtest.Good, map[string]string{"alpha": nixtest.BuildFail})
	before := x.snapshot(t)

	r := x.deploy(t, 3, "--all", "--jobs", "1", "--keep-going", "--yes")

	x.wantAttempted(t, x.added(t, before), map[string]journal.State{
		"alpha": journal.StateFailed, "beta": journal.StateConfirmed, "gamma": journal.StateConfirmed, "delta": journal.StateConfirmed,
	})
	wantTable(t, r, map[string]string{"alpha": "failed in build", "beta": "confirmed", "gamma": "confirmed", "delta": "confirmed"})
}

// status: several hosts give one row each; a host that is not on the
// tailnet is reported in its row and makes the exit 1, without hiding the
// others; --all reads the hosts from the flake.
func (x *flFleet) status(t *testing.T) {
	r := x.Ctl("status", "alpha", "beta", "ghost")
	if r.Code != 1 {
		t.Errorf("status with an unknown host: want exit 1, got %s", r)
	}
	rows := flStatusRows(t, r)
	for _, h := range []string{"alpha", "beta"} {
		if !strings.HasPrefix(strings.Fields(rows[h] + " -")[1], "yes") {
			t.Errorf("status row of %s = %q, want it reachable", h, rows[h])
		}
	}
	if f := strings.Fields(rows["ghost"] + " -"); f[1] != "no" || !strings.Contains(rows["ghost"], "not a peer") {
		t.Errorf("status row of ghost = %q, want it unreachable, not a peer", rows["ghost"])
	}
	if len(rows) != 3 {
		t.Errorf("want rows for alpha, beta and ghost:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "1 of 3 hosts unreachable") || strings.Contains(r.Stderr, "panic") {
		t.Errorf("status stderr should count the unreachable host:\n%s", r)
	}

	r = x.MustCtl(0, "status", "--all", "--flake", x.Flake)
	rows = flStatusRows(t, r)
	if len(rows) != len(flHosts) {
		t.Errorf("status --all: want %d rows:\n%s", len(flHosts), r)
	}
	for _, h := range flHosts {
		if !strings.HasPrefix(strings.Fields(rows[h] + " - -")[1], "yes") {
			t.Errorf("status --all row of %s = %q", h, rows[h])
		}
	}

	r = x.MustCtl(0, "status", "@laptops", "--flake", x.Flake)
	if rows := flStatusRows(t, r); len(rows) != 1 || rows["gamma"] == "" {
		t.Errorf("status @laptops: want only gamma:\n%s", r)
	}

	// --json: one object per host, the reachable ones with the agent's status.
	r = x.Ctl("status", "--json", "alpha", "ghost", "--flake", x.Flake)
	if r.Code != 1 {
		t.Errorf("status --json with an unknown host: want exit 1, got %s", r)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		var v struct {
			Host      string         `json:"host"`
			Reachable bool           `json:"reachable"`
			Error     string         `json:"error"`
			Status    map[string]any `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("status --json line %q: %v\n%s", line, err, r)
		}
		seen[v.Host] = true
		switch v.Host {
		case "alpha":
			if !v.Reachable || v.Status["host"] != "alpha" || v.Status["currentStorePath"] != x.Hosts["alpha"].CurrentSystem(t) {
				t.Errorf("status --json of alpha: %q (current %s)", line, x.Hosts["alpha"].CurrentSystem(t))
			}
		case "ghost":
			if v.Reachable || v.Error == "" {
				t.Errorf("status --json of ghost: %q", line)
			}
		default:
			t.Errorf("status --json: unexpected host in %q", line)
		}
	}
	if !seen["alpha"] || !seen["ghost"] {
		t.Errorf("status --json: want lines for alpha and ghost:\n%s", r)
	}
}

// flStatusRows parses the multi-host status table: host → row.
func flStatusRows(t *testing.T, r fleettest.Result) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "HOST") {
		t.Fatalf("status prints no table:\n%s", r)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	return rows
}

// logs: `logs <host> <id>` prints a past deployment's log as the agent
// keeps it, `logs <host>` the newest, `logs <host> --list` every one.
func (x *flFleet) logs(t *testing.T) {
	beta := x.Hosts["beta"]
	ids := beta.Deployments(t)
	if len(ids) < 2 {
		t.Fatalf("beta has %d deployments; the earlier subtests should have left several", len(ids))
	}
	var newest *journal.Record
	for _, id := range ids {
		if rec := flRecord(t, beta, id); newest == nil || rec.Started.After(newest.Started) {
			newest = rec
		}
	}
	first := ids[0]
	if first == newest.ID {
		first = ids[1]
	}

	r := x.MustCtl(0, "logs", "beta", first)
	want := beta.ReadFile(t, fleettest.DeploymentsDir+"/"+first+"/log")
	if want == "" || r.Stdout != want {
		t.Errorf("logs beta %s printed %d bytes, the agent's log has %d:\n%s", first, len(r.Stdout), len(want), r)
	}
	r = x.MustCtl(0, "logs", "beta")
	if want := beta.ReadFile(t, fleettest.DeploymentsDir+"/"+newest.ID+"/log"); r.Stdout != want {
		t.Errorf("logs beta (the newest, %s) printed %d bytes, its log has %d", newest.ID, len(r.Stdout), len(want))
	}

	r = x.MustCtl(0, "logs", "beta", "--list")
	listed := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			listed[f[0]] = l
		}
	}
	for _, id := range ids {
		rec := flRecord(t, beta, id)
		if l, ok := listed[id]; !ok {
			t.Errorf("logs --list lacks %s:\n%s", id, r.Stdout)
		} else if rec.State == journal.StateConfirmed && !strings.Contains(l, "confirmed") {
			t.Errorf("logs --list line of confirmed %s: %q", id, l)
		}
	}
	if len(listed) != len(ids) {
		t.Errorf("logs --list lists %d deployments, the journal has %d:\n%s", len(listed), len(ids), r.Stdout)
	}

	r = x.Ctl("logs", "beta", "20000101T000000Z-nosuchdeploy")
	if r.Code != 1 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("logs of an unknown deployment: want exit 1 saying not found, got %s", r)
	}
}

// prompt: without --yes, on a terminal, pantherctl sends every host its
// switch, which stops after dry-activate awaiting approval, asks once for
// the whole batch, and approves exactly the hosts it named in the question
// with the store paths they dry-activated: one deployment per host.
func (x *flFleet) prompt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		variants map[string]string
		ask      string // the one question
		code     int
		states   map[string]journal.State // the switch's outcome per host
	}{
		{
			name:     "both ready",
			variants: map[string]string{"alpha": nixtest.Good, "beta": nixtest.GoodV2},
			ask:      "switch 2 host(s) (alpha, beta)? [y/N]",
			states:   map[string]journal.State{"alpha": journal.StateConfirmed, "beta": journal.StateConfirmed},
		},
		{
			name:     "one fails to dry-activate",
			variants: map[string]string{"alpha": nixtest.DryFail, "beta": nixtest.Good},
			ask:      "switch 1 host(s) (beta)? [y/N]",
			code:     3,
			states:   map[string]journal.State{"beta": journal.StateConfirmed},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x.setVariants(nixtest.Good, tc.variants)
			before := x.snapshot(t)
			p := x.startOnTerminal(t, "deploy", "@servers", "--flake", x.Flake)
			p.waitStderr(t, "[y/N]", 2*time.Minute)
			p.answer(t, "y\n")
			r := p.wait(t, 2*time.Minute)
			if r.Code != tc.code {
				t.Fatalf("want exit %d, got %s", tc.code, r)
			}
			if n := strings.Count(r.Stderr, "[y/N]"); n != 1 || !strings.Contains(r.Stderr, tc.ask) {
				t.Errorf("want the one question %q, got %d questions:\n%s", tc.ask, n, r.Stderr)
			}
			added := x.added(t, before)
			// One deployment per host: the switch dry-activated, awaited
			// the answer and went on (issue 13 item 2).
			for _, h := range []string{"alpha", "beta"} {
				recs := added[h]
				if len(recs) != 1 || recs[0].Action != "switch" {
					t.Errorf("%s: want one switch deployment, got %+v", h, recs)
					continue
				}
				want, switched := tc.states[h]
				if !switched {
					if recs[0].State != journal.StateFailed {
						t.Errorf("%s: want a switch that failed to dry-activate, got %s", h, recs[0].State)
					}
					continue
				}
				if recs[0].State != want || !recs[0].AwaitApproval || recs[0].ApprovedBy == "" {
					t.Errorf("%s: want one approved %s switch, got %s (approved by %q)\n%s", h, want, recs[0].State, recs[0].ApprovedBy, r)
				}
			}
			for _, h := range []string{"gamma", "delta"} {
				if len(added[h]) > 0 {
					t.Errorf("%s is not tagged servers but got %d deployments", h, len(added[h]))
				}
			}
		})
	}
}

// flCtl is a pantherctl whose stdin is a terminal (so it asks) and whose
// stdout and stderr are captured.
type flCtl struct {
	args []string
	cmd  *exec.Cmd
	tty  *os.File // the controlling side: what we type arrives on stdin
	done chan struct{}
	res  fleettest.Result

	mu          sync.Mutex
	out, errOut bytes.Buffer
}

type flWriter struct {
	c   *flCtl
	buf *bytes.Buffer
}

func (w flWriter) Write(b []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.buf.Write(b)
}

// startOnTerminal starts pantherctl with a pseudo-terminal as its stdin.
// It is killed when t ends.
func (x *flFleet) startOnTerminal(t *testing.T, args ...string) *flCtl {
	t.Helper()
	tty, term, err := fleettest.OpenPTY()
	if err != nil {
		t.Fatalf("a terminal for pantherctl: %v", err)
	}
	c := &flCtl{args: args, tty: tty, done: make(chan struct{})}
	c.cmd = exec.Command(x.Bin.Ctl, args...)
	c.cmd.Dir, c.cmd.Env = x.Dir, x.Env()
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = term, flWriter{c, &c.out}, flWriter{c, &c.errOut}
	start := time.Now()
	err = c.cmd.Start()
	term.Close() // pantherctl has its own
	if err != nil {
		tty.Close()
		t.Fatalf("starting pantherctl: %v", err)
	}
	go func() { // owned by c: the cleanup waits for it
		err := c.cmd.Wait()
		c.mu.Lock()
		c.res = fleettest.Result{Stdout: c.out.String(), Stderr: c.errOut.String(), Elapsed: time.Since(start)}
		c.mu.Unlock()
		if ee, ok := err.(*exec.ExitError); ok {
			c.res.Code = ee.ExitCode()
		} else if err != nil {
			c.res.Code = -1
			c.res.Stderr += "\n" + err.Error()
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		tty.Close()
	})
	return c
}

// waitStderr waits until pantherctl wrote substr to stderr.
func (c *flCtl) waitStderr(t *testing.T, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.done:
			t.Fatalf("pantherctl %s ended before writing %q: %s", strings.Join(c.args, " "), substr, c.res)
		default:
		}
		c.mu.Lock()
		stderr := c.errOut.String()
		c.mu.Unlock()
		if strings.Contains(stderr, substr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pantherctl did not write %q within %v:\n%s", substr, timeout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answer types s on pantherctl's terminal.
func (c *flCtl) answer(t *testing.T, s string) {
	t.Helper()
	if _, err := c.tty.WriteString(s); err != nil {
		t.Fatalf("typing on pantherctl's terminal: %v", err)
	}
}

// wait waits for pantherctl to end, failing t after timeout.
func (c *flCtl) wait(t *testing.T, timeout time.Duration) fleettest.Result {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("pantherctl %s still running after %v", strings.Join(c.args, " "), timeout)
	}
	t.Logf("pantherctl %s: exit %d in %v", strings.Join(c.args, " "), c.res.Code, c.res.Elapsed.Round(time.Millisecond))
	return c.res
}

// offline: a known host that lost its network is reported by status and
// by a --keep-going deploy, in its row, while the others are served.
func (x *flFleet) offline(t *testing.T) {
	delta := x.Hosts["delta"]
	delta.SB.CutNetwork(t)
	t.Cleanup(func() { delta.SB.RestoreNetwork(t) })

	r := x.Ctl("status", "--all", "--flake", x.Flake)
	rows := flStatusRows(t, r)
	if r.Code != 1 || len(rows) != len(flHosts) || strings.Fields(rows["delta"] + " -")[1] != "no" || !strings.Contains(r.Stderr, "1 of 4 hosts unreachable") {
		t.Errorf("status --all with delta offline: want 4 rows, delta not reachable, exit 1; got %s", r)
	}
	for _, h := range []string{"alpha", "beta", "gamma"} {
		if !strings.HasPrefix(strings.Fields(rows[h] + " - -")[1], "yes") {
			t.Errorf("status --all row of %s = %q", h, rows[h])
		}
	}

	x.setVariants(nixtest.GoodV2, nil)
	before := x.snapshot(t)
	r = x.deploy(t, 1, "--all", "--keep-going", "--yes", "--json")
	x.wantAttempted(t, x.added(t, before), map[string]journal.State{
		"alpha": journal.StateConfirmed, "beta": journal.StateConfirmed, "gamma": journal.StateConfirmed,
	})
	_, sums := flParseJSON(t, r)
	if s := sums["delta"]; s.Outcome != "error" || s.ExitCode != 1 || !strings.Contains(s.Result, "delta") {
		t.Errorf("delta (offline) summary: %+v", s)
	}
}

// dryRun: `deploy --all --dry-run` dry-activates every host in parallel
// and switches none.
func (x *flFleet) dryRun(t *testing.T) {
	x.setVariants(nixtest.GoodV2, map[string]string{"gamma": nixtest.Warnings})
	was := map[string]string{}
	for _, h := range flHosts {
		was[h] = x.Hosts[h].CurrentSystem(t)
	}
	before := x.snapshot(t)

	r := x.deploy(t, 0, "--all", "--dry-run", "--json")

	x.wantAttempted(t, x.added(t, before), map[string]journal.State{
		"alpha": journal.StateDryActivated, "beta": journal.StateDryActivated, "gamma": journal.StateDryActivated, "delta": journal.StateDryActivated,
	})
	_, sums := flParseJSON(t, r)
	for _, h := range flHosts {
		if s := sums[h]; s.Outcome != "dry activated" || s.ExitCode != 0 {
			t.Errorf("%s dry-run summary: %+v", h, s)
		}
		if cur := x.Hosts[h].CurrentSystem(t); cur != was[h] {
			t.Errorf("%s: a dry run changed the system %s → %s", h, was[h], cur)
		}
	}
}
