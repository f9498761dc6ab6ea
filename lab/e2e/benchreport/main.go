// Command benchreport turns the output of panther's benchmarks (`go test
// -bench` over lab/e2e, see bench_test.go there) into
// docs/BENCHMARKS.md: one table with each figure, its baseline and ratio
// where there is one, its goal and whether it is met (and by how much it
// is missed), then the breakdowns that show where the time goes.
//
//	benchreport [-o docs/BENCHMARKS.md] [bench output files...]
//
// It reads standard input when no file is named, prints the table to
// standard output and writes the whole report to -o. Lines of the form
// "bench-env: <key>: <value>" (written by `make bench`) describe the
// machine and its load.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	out := flag.String("o", "", "write the markdown report to this file (default: only print the table)")
	flag.Parse()
	res := newResults()
	var inputs []io.Reader
	if flag.NArg() == 0 {
		inputs = append(inputs, os.Stdin)
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		defer f.Close()
		inputs = append(inputs, f)
	}
	for _, in := range inputs {
		if err := res.parse(in); err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
	}
	fmt.Print(res.table())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(res.report()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		fmt.Printf("\nwritten to %s\n", *out)
	}
	if len(res.failures) > 0 {
		os.Exit(1)
	}
}

// results is everything read from benchmark output.
type results struct {
	metrics  map[string]map[string]float64 // benchmark → unit → value
	procs    map[string]int                // benchmark → GOMAXPROCS suffix
	env      [][2]string                   // bench-env lines and go test's header, in order
	failures []string                      // FAIL lines
}

func newResults() *results {
	return &results{metrics: map[string]map[string]float64{}, procs: map[string]int{}}
}

var resultLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.+)$`)

// parse reads one go test -bench output.
func (r *results) parse(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "bench-env: "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "bench-env: "), ": ")
			r.env = append(r.env, [2]string{k, strings.TrimSpace(v)})
		case strings.HasPrefix(line, "cpu: "), strings.HasPrefix(line, "goos: "), strings.HasPrefix(line, "goarch: "):
			k, v, _ := strings.Cut(line, ": ")
			if !r.hasEnv(k) {
				r.env = append(r.env, [2]string{k, v})
			}
		case strings.HasPrefix(line, "--- FAIL: "), strings.HasPrefix(line, "FAIL\t"), strings.HasPrefix(line, "panic: "):
			r.failures = append(r.failures, line)
		}
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[4])
		if len(fields)%2 != 0 {
			continue
		}
		name := m[1]
		if r.metrics[name] == nil {
			r.metrics[name] = map[string]float64{}
		}
		if m[2] != "" {
			r.procs[name], _ = strconv.Atoi(m[2])
		}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return fmt.Errorf("%s: metric %q: %w", name, fields[i+1], err)
			}
			r.metrics[name][fields[i+1]] = v
		}
	}
	return sc.Err()
}

func (r *results) hasEnv(k string) bool {
	for _, e := range r.env {
		if e[0] == k {
			return true
		}
	}
	return false
}

// get returns a metric and whether it was reported.
func (r *results) get(bench, unit string) (float64, bool) {
	v, ok := r.metrics[bench][unit]
	return v, ok
}

// goal is one line of the table: a metric, what it is compared with, and
// the most it may be.
type goal struct {
	num, what       string
	bench, metric   string
	max             float64
	unit            string // how value and goal are shown: ms, x, MB, %, bytes
	measured, basis string // metrics shown as "measured" and "baseline" (default: metric, none)
	note            func(r *results) string
}

// goals are the figures of issue 7, in the order of the table.
func goals() []goal {
	return []goal{
		{num: "1", what: "no-op `pantherctl deploy --yes` vs the same steps by hand (ratio of medians)", bench: "BenchmarkNoopDeploy",
			metric: "x-by-hand", max: 1.15, unit: "x", measured: "ms/deploy", basis: "ms/by-hand"},
		{num: "1", what: "time pantherctl adds to those steps (difference of medians)", bench: "BenchmarkNoopDeploy",
			metric: "ms-added", max: 300, unit: "ms"},
		{num: "2", what: "cold start → first RPC answered, persisted tsnet state (`pantherctl status`, median)", bench: "BenchmarkColdStart",
			metric: "ms/first-rpc", max: 1000, unit: "ms", note: func(r *results) string {
				if v, ok := r.get("BenchmarkColdStart", "ms/first-rpc-max"); ok {
					return fmt.Sprintf("slowest run %.0f ms", v)
				}
				return ""
			}},
		{num: "3", what: "confirm deadline → rollback started (mean), agent running (its timer or the independent one)", bench: "BenchmarkDeadlineToRollback/agent",
			metric: "start-ms/op", max: 1000, unit: "ms"},
		{num: "3", what: "confirm deadline → rollback finished (mean), agent running", bench: "BenchmarkDeadlineToRollback/agent",
			metric: "finish-ms/op", max: 1000, unit: "ms", note: func(r *results) string {
				if v, ok := r.get("BenchmarkDeadlineToRollback/agent", "worst-finish-ms"); ok {
					return fmt.Sprintf("slowest %.0f ms", v)
				}
				return ""
			}},
		{num: "3", what: "confirm deadline → rollback started (mean), agent down: the systemd timer alone", bench: "BenchmarkDeadlineToRollback/timer",
			metric: "start-ms/op", max: 1000, unit: "ms"},
		{num: "3", what: "confirm deadline → rollback finished (mean), agent down: the systemd timer alone", bench: "BenchmarkDeadlineToRollback/timer",
			metric: "finish-ms/op", max: 1000, unit: "ms", note: func(r *results) string {
				if v, ok := r.get("BenchmarkDeadlineToRollback/timer", "worst-finish-ms"); ok {
					return fmt.Sprintf("slowest %.0f ms", v)
				}
				return ""
			}},
		{num: "4", what: "no-op deploy to 32 agents, `--jobs 8`, vs one host × 4 batches (ratio of medians)", bench: "BenchmarkFanOut",
			metric: "x-ideal", max: 1.3, unit: "x", measured: "ms/fan-out-32", basis: "ms/ideal"},
		{num: "4", what: "pantherctl peak RSS during that fan-out (largest run)", bench: "BenchmarkFanOut",
			metric: "MB/peak-rss-max", max: 200, unit: "MB"},
		{num: "5", what: "upload of a 20 MB incompressible source (median)", bench: "BenchmarkUpload",
			metric: "ms/upload-20MB", max: 1000, unit: "ms", note: func(r *results) string {
				if v, ok := r.get("BenchmarkUpload", "MB/s"); ok {
					return fmt.Sprintf("%.0f MB/s", v)
				}
				return ""
			}},
		{num: "5", what: "bytes sent for an unchanged source (largest run)", bench: "BenchmarkUpload",
			metric: "bytes/unchanged-max", max: 0, unit: "bytes", note: func(r *results) string {
				if v, ok := r.get("BenchmarkUpload", "ms/unchanged-check"); ok {
					return fmt.Sprintf("checked in %.0f ms", v)
				}
				return ""
			}},
		{num: "6", what: "agent idle RSS over 60 s (largest sample)", bench: "BenchmarkAgentIdle",
			metric: "MB/rss-max", max: 80, unit: "MB"},
		{num: "6", what: "agent idle CPU over 60 s", bench: "BenchmarkAgentIdle",
			metric: "%cpu", max: 1, unit: "%"},
		// Issue 12 item 3 and issue 13 item 8 (lab/e2e/approve_bench_test.go).
		{num: "12.3", what: "flake evaluations per `deploy --yes` (largest run)", bench: "BenchmarkPromptedDeploy",
			metric: "evals/yes-deploy-max", max: 1},
		{num: "12.3", what: "flake evaluations per prompted deploy, answered y (largest run)", bench: "BenchmarkPromptedDeploy",
			metric: "evals/prompted-deploy-max", max: 1},
		{num: "13.8", what: "prompted deploy: \"y\" → switched, over the switch step alone (a `--yes` deploy's dry-activate summary → switched; difference of medians)", bench: "BenchmarkPromptedDeploy",
			metric: "ms-over-switch", max: 200, unit: "ms", measured: "ms/y-to-switched", basis: "ms/switch-alone"},
		{num: "12.4", what: "16 agents, one identical system (≥ 2 s CPU): builds performed with the fleet cache (counted from the agents' logs)", bench: "BenchmarkFleetCache",
			metric: "builds", max: 1, unit: "", note: func(r *results) string {
				if v, ok := r.get("BenchmarkFleetCache", "builds-baseline"); ok {
					return fmt.Sprintf("%.0f builds with one build per host", v)
				}
				return ""
			}},
		{num: "12.4", what: "16 agents: wall with the fleet cache vs one build per host (`--build-on none`), same run", bench: "BenchmarkFleetCache",
			metric: "x-baseline", max: 0.35, unit: "x", measured: "ms/fleet-cache", basis: "ms/one-build-per-host", note: func(r *results) string {
				mean, ok1 := r.get("BenchmarkFleetCache", "bytes/host-mean")
				mx, ok2 := r.get("BenchmarkFleetCache", "bytes/host-max")
				if ok1 && ok2 {
					return fmt.Sprintf("over the tailnet per substituting host: %.0f bytes mean, %.0f max", mean, mx)
				}
				return ""
			}},
		{num: "12.6", what: "1,000 simulated agents: pantherctl peak RSS added per host (largest of every --jobs)", bench: "BenchmarkSimFleet",
			metric: "MB/rss-per-host-max", max: 1, unit: "MB", note: func(r *results) string {
				if v, ok := r.get("BenchmarkSimFleet", "MB/peak-rss-added-max"); ok {
					return fmt.Sprintf("%.0f MB for the fleet", v)
				}
				return ""
			}},
		{num: "12.6", what: "1,000 simulated agents: wall vs the model ceil(N/jobs) × one host, --jobs 25 and 100 (worst median ratio)", bench: "BenchmarkSimFleet",
			metric: "x-latency-model-max", max: 1.2, unit: "x"},
		{num: "12.6", what: "1,000 simulated agents: wall vs max(ceil(N/jobs) × one host, N × CPU per host / cores), every --jobs (worst median ratio)", bench: "BenchmarkSimFleet",
			metric: "x-model-max", max: 1.2, unit: "x"},
		{num: "12", what: "flake with a 50 MB locked input, first deploy to 2 agents: input bytes per agent vs the input's NAR size (uploaded once per agent)", bench: "BenchmarkInputs50MB",
			metric: "x-nar-first", max: 1, unit: "x", measured: "MB/agent-first", basis: "MB/nar", note: func(r *results) string {
				if v, ok := r.get("BenchmarkInputs50MB", "uploads/agent-first-max"); ok {
					return fmt.Sprintf("%.0f upload(s) per agent", v)
				}
				return ""
			}},
		{num: "12", what: "the same flake deployed again: input bytes sent (all agents, largest run)", bench: "BenchmarkInputs50MB",
			metric: "bytes/second-max", max: 0, unit: "bytes"},
	}
}

// show formats v in unit.
func show(v float64, unit string) string {
	switch unit {
	case "x":
		return fmt.Sprintf("%.2f×", v)
	case "ms":
		return fmt.Sprintf("%.0f ms", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	case "%":
		return fmt.Sprintf("%.2f %%", v)
	case "bytes":
		return fmt.Sprintf("%.0f bytes", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// unitOf is how a metric's value is shown.
func unitOf(metric string) string {
	switch {
	case strings.HasPrefix(metric, "ms"), strings.Contains(metric, "-ms"):
		return "ms"
	case strings.HasPrefix(metric, "MB/") && metric != "MB/s":
		return "MB"
	case strings.HasPrefix(metric, "x-"):
		return "x"
	}
	return ""
}

// verdict says whether v meets the goal and, if not, by how much it misses.
func verdict(v float64, g goal) string {
	if v <= g.max {
		return "met"
	}
	over := v - g.max
	if g.max == 0 {
		return "**missed** by " + show(over, g.unit)
	}
	return fmt.Sprintf("**missed** by %s (%+.0f%%)", show(over, g.unit), 100*over/g.max)
}

// table is the figures table in markdown.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| # | Figure | Measured | Baseline | Ratio | Goal | Result | Machine busy (others) / load |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, g := range goals() {
		v, ok := r.get(g.bench, g.metric)
		if !ok {
			fmt.Fprintf(&b, "| %s | %s | not measured (`%s` did not report `%s`) | | | ≤ %s | — | |\n", g.num, g.what, g.bench, g.metric, show(g.max, g.unit))
			continue
		}
		measured, basis, ratio := show(v, g.unit), "", ""
		if g.measured != "" {
			m, _ := r.get(g.bench, g.measured)
			measured = show(m, unitOf(g.measured))
			if g.basis != "" {
				bv, _ := r.get(g.bench, g.basis)
				basis = show(bv, unitOf(g.basis))
			}
			ratio = show(v, g.unit)
		}
		if g.note != nil {
			if n := g.note(r); n != "" {
				measured += " (" + n + ")"
			}
		}
		load := ""
		if busy, ok := r.get(g.bench, "%machine-busy"); ok {
			load = fmt.Sprintf("%.0f %%", busy)
			if others, ok := r.get(g.bench, "%others-busy"); ok {
				load += fmt.Sprintf(" (others %.0f %%)", others)
			}
		}
		if l, ok := r.get(g.bench, "load1"); ok {
			load += fmt.Sprintf(" / %.1f", l)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | ≤ %s | %s | %s |\n", g.num, g.what, measured, basis, ratio, show(g.max, g.unit), verdict(v, g), load)
	}
	return b.String()
}

// missed reports whether any goal of bench is missed.
func (r *results) missed(bench string) bool {
	for _, g := range goals() {
		if v, ok := r.get(bench, g.metric); ok && g.bench == bench && v > g.max {
			return true
		}
	}
	return false
}

// report is the whole markdown document.
func (r *results) report() string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `make bench` (lab/e2e/bench_test.go, formatted by lab/e2e/benchreport); do not edit by hand.\n")
	b.WriteString("Every figure runs the real `pantherctl` binary against real `panther-agent`s in systemd sandboxes on an in-process tailnet, building a real nix flake, and is measured side by side with its baseline in the same run.\n\n")
	b.WriteString("## Machine\n\n")
	for _, e := range r.env {
		fmt.Fprintf(&b, "- %s: %s\n", e[0], e[1])
	}
	if p := r.maxProcs(); p > 0 {
		fmt.Fprintf(&b, "- GOMAXPROCS: %d\n", p)
	}
	b.WriteString("- The machine is shared: other engineers' builds and tests may run at the same time. \"Machine busy\" is the share of all CPUs busy over each benchmark's measured part, \"others\" the part of it not used by the benchmark's own processes (its test process, pantherctl and the sandboxes' cgroups): other engineers' work, and CPU time the hypervisor took (steal), \"load\" the one-minute load average at its end.\n\n")
	b.WriteString("## Figures\n\n")
	b.WriteString(r.table())
	b.WriteString("\n")
	if len(r.failures) > 0 {
		b.WriteString("**Failures in this run:**\n\n")
		for _, f := range r.failures {
			fmt.Fprintf(&b, "- `%s`\n", f)
		}
		b.WriteString("\n")
	}
	r.overhead(&b)
	r.coldStart(&b)
	r.deadline(&b)
	r.fanOut(&b)
	r.upload(&b)
	r.idle(&b)
	r.simFleet(&b)
	r.fleetCache(&b)
	r.all(&b)
	return b.String()
}

func (r *results) maxProcs() int {
	p := 0
	for _, v := range r.procs {
		p = max(p, v)
	}
	return p
}

// ms formats a metric of bench in milliseconds, "–" if absent.
func (r *results) ms(bench, metric string) string {
	if v, ok := r.get(bench, metric); ok {
		return fmt.Sprintf("%.0f", v)
	}
	return "–"
}

func (r *results) val(bench, metric string) float64 {
	v, _ := r.get(bench, metric)
	return v
}

func (r *results) overhead(b *strings.Builder) {
	const bench = "BenchmarkNoopDeploy"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 1. Where a no-op deploy's time goes\n\n")
	b.WriteString("Medians in ms, of each segment on its own (they need not add up to the total's median). pantherctl's segments are contiguous, from the process start to its exit, time-stamped by pantherctl (its debug log and its controller log, written as each event arrives); the agent's are from its own deployment log. By hand is one `bash` script inside the same host: `nix build`, `switch-to-configuration dry-activate`, `nix-env --set`, `systemd-run --wait --collect … switch`.\n\n")
	rows := []struct{ label, ctl, hand string }{
		{"process start, flags, key, pack the flake, start tsnet", "ms/ctl.start", ""},
		{"tailnet up (control, DERP)", "ms/ctl.tailnet-up", ""},
		{"open the controller log, start the gRPC connection", "ms/ctl.dial", ""},
		{"connect + HasSource (upload check)", "ms/ctl.upload-check", ""},
		{"Deploy request → validate started", "ms/ctl.deploy-request", ""},
		{"validate (agent: flake hosts and warnings, one nix eval)", "ms/ctl.validate", ""},
		{"build (+ agent: current system and generation)", "ms/ctl.build", "ms/hand.build"},
		{"dry-activate (+ agent: summary, generation, health baseline, journal)", "ms/ctl.dry-activate", "ms/hand.dry-activate"},
		{"nix-env --set (by hand)", "", "ms/hand.profile"},
		{"switch (agent: nix-env --set, systemd-run, wait for the unit)", "ms/ctl.switch", "ms/hand.switch"},
		{"health", "ms/ctl.health", ""},
		{"confirm over a new connection", "ms/ctl.confirm", ""},
		{"exit (close the tailnet)", "ms/ctl.exit", ""},
		{"**total**", "ms/deploy", "ms/by-hand"},
		{"(entering the host around the steps by hand: nsenter, bash; not counted)", "", "ms/hand.enter"},
	}
	b.WriteString("| segment | pantherctl | by hand |\n|---|---:|---:|\n")
	for _, row := range rows {
		c, h := "", ""
		if row.ctl != "" {
			c = r.ms(bench, row.ctl)
		}
		if row.hand != "" {
			h = r.ms(bench, row.hand)
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", row.label, c, h)
	}
	b.WriteString("\nThe agent's side, by its own clock, next to the same commands run by hand in the same host (the validate evaluation timed apart from the four steps):\n\n| agent step | agent | by hand |\n|---|---:|---:|\n")
	for _, s := range []struct{ label, metric, hand string }{
		{"validate: one nix eval (host list and config.warnings)", "ms/agent.validate", "ms/hand.eval"},
		{"build: nix build", "ms/agent.build", "ms/hand.build"},
		{"after build: current system and generation", "ms/agent.after-build", ""},
		{"dry-activate", "ms/agent.dry-activate", "ms/hand.dry-activate"},
		{"before switch: summary, generation, health baseline (D-Bus), journal write", "ms/agent.before-switch", ""},
		{"switch start: nix-env --set, generation, journal write, systemd-run", "ms/agent.switch-start", "ms/hand.profile"},
		{"switch unit runs (the agent polls for its exit file)", "ms/agent.switch-unit", "ms/hand.switch"},
		{"after switch: journal, current system", "ms/agent.after-switch", ""},
		{"health checks", "ms/agent.health", ""},
		{"arm the dead-man: journal write", "ms/agent.arm-confirm", ""},
	} {
		hand := ""
		if s.hand != "" {
			sum, ok := 0.0, true
			for _, m := range strings.Split(s.hand, "+") {
				v, found := r.get(bench, m)
				sum, ok = sum+v, ok && found
			}
			if ok {
				hand = fmt.Sprintf("%.0f", sum)
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", s.label, r.ms(bench, s.metric), hand)
	}
	if r.missed(bench) {
		b.WriteString("\n**What holds it back** (measured above, largest first): what pantherctl and the agent do that the steps by hand do not, and how much longer the agent's shared steps take than by hand:\n\n")
		v := func(m string) float64 { return r.val(bench, m) }
		agentTotal := 0.0
		for _, m := range []string{"validate", "build", "after-build", "dry-activate", "before-switch", "switch-start", "switch-unit", "after-switch", "health", "arm-confirm"} {
			agentTotal += v("ms/agent." + m)
		}
		seen := 0.0
		for _, m := range []string{"validate", "build", "dry-activate", "switch", "health"} {
			seen += v("ms/ctl." + m)
		}
		r.ranked(b, map[string]float64{
			"agent: validate, one nix eval":                                                          v("ms/agent.validate"),
			"agent: generation lookups, health baseline, journal between phases":                     v("ms/agent.after-build") + v("ms/agent.before-switch") + v("ms/agent.after-switch") + v("ms/agent.arm-confirm"),
			"agent: health checks":                                                                   v("ms/agent.health"),
			"agent: build beyond nix build by hand":                                                  v("ms/agent.build") - v("ms/hand.build"),
			"agent: dry-activate beyond by hand":                                                     v("ms/agent.dry-activate") - v("ms/hand.dry-activate"),
			"agent: switch start (nix-env --set, journal, systemd-run) beyond nix-env --set by hand": v("ms/agent.switch-start") - v("ms/hand.profile"),
			"agent: switch unit, polled for its exit, beyond systemd-run --wait by hand":             v("ms/agent.switch-unit") - v("ms/hand.switch"),
			"pantherctl: process start, pack, tsnet start":                                           v("ms/ctl.start"),
			"pantherctl: tailnet up":                                                                 v("ms/ctl.tailnet-up"),
			"pantherctl: connect + HasSource":                                                        v("ms/ctl.dial") + v("ms/ctl.upload-check"),
			"pantherctl: Deploy request":                                                             v("ms/ctl.deploy-request"),
			"pantherctl: confirm over a new connection":                                              v("ms/ctl.confirm"),
			"pantherctl: exit":                                                                       v("ms/ctl.exit"),
			"events reaching pantherctl after the agent's steps (stream latency)":                    seen - agentTotal,
		})
		b.WriteString("\nItems faster than by hand (negative) and under 5 ms are left out; the items are medians, so they need not add up to the time added.\n")
	}
	b.WriteString("\n")
}

// ranked lists costs (ms) largest first, leaving out those under 5 ms.
func (r *results) ranked(b *strings.Builder, costs map[string]float64) {
	type kv struct {
		k string
		v float64
	}
	var l []kv
	for k, v := range costs {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	for _, e := range l {
		if e.v >= 5 {
			fmt.Fprintf(b, "- %s: %.0f ms\n", e.k, e.v)
		}
	}
}

func (r *results) coldStart(b *strings.Builder) {
	const bench = "BenchmarkColdStart"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 2. Cold start of `pantherctl status`\n\n")
	b.WriteString("Medians in ms from the process start, second run onwards (the tsnet state persisted by the runs before).\n\n| step | ms |\n|---|---:|\n")
	for _, s := range []struct{ label, metric string }{
		{"process start → tsnet started", "ms/start-to-tsnet-started"},
		{"tsnet started → tailnet up", "ms/tsnet-started-to-up"},
		{"tailnet up → Status answered (connect, RPC)", "ms/up-to-answer"},
		{"**process start → Status answered**", "ms/first-rpc"},
		{"slowest run, process start → Status answered", "ms/first-rpc-max"},
		{"process start → exit", "ms/exit"},
		{"first run, registering the node (not judged)", "ms/first-run-registers"},
	} {
		fmt.Fprintf(b, "| %s | %s |\n", s.label, r.ms(bench, s.metric))
	}
	var lib []string
	for name := range r.metrics {
		if strings.HasPrefix(name, "BenchmarkColdStartPersisted") {
			lib = append(lib, name)
		}
	}
	sort.Strings(lib)
	for _, name := range lib {
		if v, ok := r.get(name, "ms/first-rpc"); ok {
			fmt.Fprintf(b, "| for comparison, internal/tailnet `%s`: an in-process node restarted from its state, to its first RPC (no pantherctl process) | %.0f |\n", name, v)
		}
	}
	if r.missed(bench) {
		b.WriteString("\n**What holds it back** (largest first):\n\n")
		r.ranked(b, map[string]float64{
			"process start → tsnet started": r.val(bench, "ms/start-to-tsnet-started"),
			"tsnet started → tailnet up":    r.val(bench, "ms/tsnet-started-to-up"),
			"tailnet up → Status answered":  r.val(bench, "ms/up-to-answer"),
		})
	}
	b.WriteString("\n")
}

func (r *results) deadline(b *strings.Builder) {
	const agent, timer = "BenchmarkDeadlineToRollback/agent", "BenchmarkDeadlineToRollback/timer"
	if r.metrics[agent] == nil && r.metrics[timer] == nil {
		return
	}
	b.WriteString("## 3. Dead-man: confirm deadline → rollback\n\n")
	b.WriteString("From `BenchmarkDeadlineToRollback` (lab/e2e/deadman_bench_test.go): a switch with `--no-confirm --detach` and a 2 s window, mean over the runs. " +
		"**agent**: the agent runs; its own deadline and the independent systemd timer fire together and one of them starts the rollback (times from the deployment log and the journal record). " +
		"**timer**: the agent is SIGKILLed and stopped once the window is open and kept down; the systemd timer alone runs the previous system's switch (times from the dead-man service's ExecMainStart/ExecMainExit timestamps).\n\n" +
		"| step | agent running, ms | agent down (timer), ms |\n|---|---:|---:|\n")
	for _, s := range []struct{ label, metric string }{
		{"deadline → rollback started", "start-ms/op"},
		{"deadline → rollback finished", "finish-ms/op"},
		{"slowest, deadline → finished", "worst-finish-ms"},
	} {
		fmt.Fprintf(b, "| %s | %s | %s |\n", s.label, r.ms(agent, s.metric), r.ms(timer, s.metric))
	}
	b.WriteString("\n")
}

func (r *results) fanOut(b *strings.Builder) {
	const bench = "BenchmarkFanOut"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 4. Fan-out to 32 agents\n\n")
	if v, ok := r.get(bench, "netns-per-host"); ok && v == 0 {
		b.WriteString("32 sandboxes, each running the real agent, sharing the test's network namespace (the no-netns mode, PANTHER_BENCH_NO_NETNS=1). ")
	} else {
		b.WriteString("32 sandboxes, each running the real agent in its own network namespace (joined to the machine by a veth pair), booted in parallel. ")
	}
	b.WriteString("Each run deploys the configuration every host already runs to all 32 with `--jobs 8`, then to one host alone; the ideal is four batches of that one-host deploy. Medians.\n\n| | value |\n|---|---:|\n")
	for _, s := range []struct{ label, metric, unit string }{
		{"32 hosts, --jobs 8", "ms/fan-out-32", "ms"},
		{"one host", "ms/one-host", "ms"},
		{"ideal: 4 × one host", "ms/ideal", "ms"},
		{"per-host time inside the fan-out, median", "ms/per-host-median", "ms"},
		{"per-host time inside the fan-out, slowest", "ms/per-host-max", "ms"},
		{"pantherctl peak RSS, 32 hosts (median / largest)", "MB/peak-rss", "MB"},
		{"pantherctl peak RSS, one host", "MB/peak-rss-one-host", "MB"},
		{"CPU used by the 32 hosts (agents, nix, switches) per fan-out", "cpu-s/hosts", "s"},
		{"CPU used by pantherctl per fan-out", "cpu-s/pantherctl", "s"},
		{"CPU used by a one-host deploy (host and pantherctl)", "cpu-s/one-host", "s"},
		{"machine busy during the fan-out", "%machine-busy-fan-out", "%"},
		{"booting the 32 sandboxes and agents", "s/boot-32", "s"},
		{"first deploy to the 32 (register, upload, switch)", "s/first-deploy-32", "s"},
	} {
		v, ok := r.get(bench, s.metric)
		if !ok {
			continue
		}
		switch s.unit {
		case "s":
			fmt.Fprintf(b, "| %s | %.1f s |\n", s.label, v)
		case "MB":
			extra := ""
			if mx, ok := r.get(bench, s.metric+"-max"); ok {
				extra = fmt.Sprintf(" / %.1f MB", mx)
			}
			fmt.Fprintf(b, "| %s | %.1f MB%s |\n", s.label, v, extra)
		default:
			fmt.Fprintf(b, "| %s | %s |\n", s.label, show(v, s.unit))
		}
	}
	var segs []string
	for _, seg := range []string{"start", "tailnet-up", "dial", "upload-check", "deploy-request", "validate", "build", "dry-activate", "switch", "health", "confirm", "exit"} {
		if v, ok := r.get(bench, "ms/one-host."+seg); ok {
			segs = append(segs, fmt.Sprintf("%s %.0f", seg, v))
		}
	}
	if len(segs) > 0 {
		fmt.Fprintf(b, "\nThe one-host deploy of this fleet, by segment as in figure 1 (medians, ms): %s.\n", strings.Join(segs, ", "))
	}
	if r.missed(bench) {
		cores := float64(r.procs[bench])
		hosts, ctl := r.val(bench, "cpu-s/hosts"), r.val(bench, "cpu-s/pantherctl")
		ideal := r.val(bench, "ms/ideal") / 1000
		b.WriteString("\n**What holds it back**: ")
		if hosts > 0 && cores > 0 {
			fan := r.val(bench, "ms/fan-out-32") / 1000
			floor := (hosts + ctl) / cores
			fmt.Fprintf(b, "CPU. One fan-out costs %.1f CPU-seconds in the hosts and %.1f in pantherctl; on %.0f cores that alone takes at least %.1f s, %.2f× the ideal of %.1f s. ",
				hosts, ctl, cores, floor, floor/ideal, ideal)
			fmt.Fprintf(b, "During the fan-out the machine was %.0f%% busy; panther's processes had %.0f%% of its CPU time, other processes (other engineers' builds and tests) the rest. ",
				r.val(bench, "%machine-busy-fan-out"), 100*(hosts+ctl)/(cores*fan))
			if wall := r.val(bench, "ms/one-host") / 1000; wall > 0 {
				per := (hosts + ctl) / 32
				fmt.Fprintf(b, "Each host's deploy costs %.2f CPU-seconds inside the fan-out; the ideal has eight of them finish in one host's %.2f s, which needs %.1f cores. ",
					per, wall, 8*per/wall)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func (r *results) upload(b *strings.Builder) {
	const bench = "BenchmarkUpload"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 5. Upload\n\n")
	b.WriteString("20 files of 1 MiB from crypto/rand added to the flake; each run changes one small file, so the agent has never seen the source and all of it is sent (`--build-only`), then deploys again unchanged. Times from pantherctl's controller log, from `==> upload` (the gRPC connection is still being set up) to the agent's answer. Medians.\n\n| | value |\n|---|---:|\n")
	fmt.Fprintf(b, "| archive size | %.1f MB |\n", r.val(bench, "MB/archive"))
	fmt.Fprintf(b, "| upload of the changed source | %s ms |\n", r.ms(bench, "ms/upload-20MB"))
	fmt.Fprintf(b, "| throughput | %.0f MB/s |\n", r.val(bench, "MB/s"))
	fmt.Fprintf(b, "| unchanged source: HasSource answered | %s ms |\n", r.ms(bench, "ms/unchanged-check"))
	fmt.Fprintf(b, "| unchanged source: bytes sent (largest run) | %.0f |\n", r.val(bench, "bytes/unchanged-max"))
	if r.missed(bench) {
		b.WriteString("\n**What holds it back**: the throughput above (the tailnet is WireGuard in user space, tsnet's netstack, on both ends).\n")
	}
	b.WriteString("\n")
}

// fleetCache explains the fleet cache figures (issue 12 item 4).
func (r *results) fleetCache(b *strings.Builder) {
	const bench = "BenchmarkFleetCache"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 12.4 Build once per closure: 16 agents, one system\n\n")
	b.WriteString("From `BenchmarkFleetCache` (lab/e2e/cache_bench_test.go): 16 sandboxed agents with `fleetCache` set deploy `--build-only --jobs 16` one identical system whose builder burns ≈ 2.7 s of CPU, " +
		"first with `--build-on none` (every host builds: today's behaviour), then with the fleet cache (the first host builds, the others substitute it from its tailnet cache through a forwarder on 127.0.0.1, checked by nix against the fleet key). " +
		"Builds are counted from the agents' deployment logs (the builder prints a marker line), bytes from the agents' own substitution lines.\n\n")
	b.WriteString("| | one build per host | fleet cache |\n|---|---:|---:|\n")
	fmt.Fprintf(b, "| builds performed | %s | %s |\n", trim(r.val(bench, "builds-baseline")), trim(r.val(bench, "builds")))
	fmt.Fprintf(b, "| wall time of the deploy | %s ms | %s ms |\n", r.ms(bench, "ms/one-build-per-host"), r.ms(bench, "ms/fleet-cache"))
	fmt.Fprintf(b, "| bytes over the tailnet per substituting host (mean / max) | 0 | %s / %s |\n\n", trim(r.val(bench, "bytes/host-mean")), trim(r.val(bench, "bytes/host-max")))
	b.WriteString("Where the rest of the time likely goes (an estimate, not measured per phase): once the build is shared, each host still runs its own nix processes — the host check and warnings evaluation, " +
		"one more evaluation for the out path it asks its peers about (until the single evaluation of issue 12 item 3 yields it), and the `nix copy --from` — " +
		"and the builder's cache runs one `nix store dump-path` per substituting host. On two shared cores those ~50 short nix processes, not the build, then set the wall time.\n\n")
}

func (r *results) idle(b *strings.Builder) {
	const bench = "BenchmarkAgentIdle"
	if r.metrics[bench] == nil {
		return
	}
	b.WriteString("## 6. Agent at rest\n\n")
	b.WriteString("The agent of a host just deployed and confirmed, watched for 60 s from /proc inside its sandbox: VmRSS every second, utime+stime over the window.\n\n| | value |\n|---|---:|\n")
	for _, s := range []struct{ label, metric, unit string }{
		{"VmRSS, largest sample", "MB/rss-max", "MB"},
		{"of which anonymous (Go heap, stacks)", "MB/rss-anon", "MB"},
		{"of which file-backed (the binary's pages)", "MB/rss-file", "MB"},
		{"VmHWM (peak since the agent started, the deploy included)", "MB/hwm", "MB"},
		{"CPU", "%cpu", "%"},
	} {
		if v, ok := r.get(bench, s.metric); ok {
			fmt.Fprintf(b, "| %s | %s |\n", s.label, show(v, s.unit))
		}
	}
	if rss, ok := r.get(bench, "MB/rss-max"); ok && rss > 80 {
		fmt.Fprintf(b, "\n**What holds it back**: %.1f MB of the resident memory is anonymous (Go heap and stacks), %.1f MB the binary's pages.\n",
			r.val(bench, "MB/rss-anon"), r.val(bench, "MB/rss-file"))
	}
	b.WriteString("\n")
}

// all lists every metric of every benchmark, for the record.
func (r *results) all(b *strings.Builder) {
	b.WriteString("## All reported metrics\n\n")
	var names []string
	for n := range r.metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var units []string
		for u := range r.metrics[n] {
			units = append(units, u)
		}
		sort.Strings(units)
		var parts []string
		for _, u := range units {
			parts = append(parts, fmt.Sprintf("%s %s", trim(r.metrics[n][u]), u))
		}
		fmt.Fprintf(b, "- `%s`: %s\n", n, strings.Join(parts, ", "))
	}
}

func trim(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// simFleet is the breakdown of BenchmarkSimFleet (issue 12 item 6).
func (r *results) simFleet(b *strings.Builder) {
	const bench = "BenchmarkSimFleet"
	if r.metrics[bench] == nil {
		return
	}
	n, _ := r.get(bench, "hosts")
	h, _ := r.get(bench, "ms/host")
	fmt.Fprintf(b, "## 12.6 Controller scale: %.0f simulated agents\n\n", n)
	b.WriteString("lab/simfleet: the real `pantherctl deploy --yes` orchestration runs in the benchmark's process against fake agents served by a child process, one gRPC server per host on loopback (scripted phases of 350 ms per host in all, no nix, no tailnet, no signature checks), reached through `cli.IO.Dialer`; the confirm goes over the same dialer. One host's deploy time h is a one-host deploy (median of 5). The latency model is ceil(N/jobs) × h: hosts are the bottleneck. When many hosts run at once the machine's cores are: every host costs c of CPU (pantherctl's and the fake agents', both on this machine), so the wall cannot drop below N × c / cores, cores being those other processes left free during the run (the machine is shared; from /proc/stat); the full model is the larger of the two. Medians over the runs.\n\n")
	fmt.Fprintf(b, "h = %.0f ms", h)
	if c, ok := r.get(bench, "ms-cpu/host"); ok {
		fmt.Fprintf(b, "; c = %.2f ms of CPU per host", c)
		if ctl, ok := r.get(bench, "ms-cpu-ctl/host"); ok {
			fmt.Fprintf(b, " (pantherctl %.2f ms)", ctl)
		}
	}
	if v, ok := r.get(bench, "cores-left"); ok {
		fmt.Fprintf(b, "; %.2f cores left by other processes", v)
	}
	if l, ok := r.get(bench, "load1"); ok {
		fmt.Fprintf(b, "; load average %.1f at the end", l)
	}
	b.WriteString(".\n\n| --jobs | wall | ceil(N/jobs) × h | wall / latency model | wall / full model |\n|---:|---:|---:|---:|---:|\n")
	for _, jobs := range []int{25, 100, 250, 1000} {
		wall, ok := r.get(bench, fmt.Sprintf("ms/jobs-%d", jobs))
		if !ok {
			continue
		}
		lat, _ := r.get(bench, fmt.Sprintf("x-latency-model-jobs-%d", jobs))
		full, _ := r.get(bench, fmt.Sprintf("x-model-jobs-%d", jobs))
		rounds := math.Ceil(n / float64(jobs))
		fmt.Fprintf(b, "| %d | %.0f ms | %.0f ms | %.2f× | %.2f× |\n", jobs, wall, rounds*h, lat, full)
	}
	b.WriteString("\n")
}
