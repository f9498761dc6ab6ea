package e2e

// The benchmarks behind docs/BENCHMARKS.md (`make bench`). Each one boots
// its own fleet (real agents in systemd sandboxes, the real pantherctl as a
// separate process), measures side by side in the same run, and reports
// medians with b.ReportMetric; lab/e2e/benchreport turns the output
// into the table with goals. They run only with -bench, never in `make
// test`. Run one with, for example:
//
//	TS_NO_LOGS_NO_SUPPORT=true go test -run '^$' -bench NoopDeploy -benchtime 10x ./lab/e2e
//
// One iteration is one sample (one deploy, one pantherctl status, one
// 60-second idle window, ...): -benchtime Nx sets how many.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// benchRun is one pantherctl process, timed from just before it was started.
type benchRun struct {
	args           []string
	code           int
	stdout, stderr string
	start          time.Time
	firstOut       time.Time // first byte on stdout (zero if none)
	end            time.Time
	maxRSS         int64         // peak resident set, bytes (wait4 rusage)
	cpu            time.Duration // user + system CPU time
}

func (r benchRun) elapsed() time.Duration { return r.end.Sub(r.start) }

func (r benchRun) String() string {
	return fmt.Sprintf("pantherctl %s: exit %d after %v\n--- stdout\n%s--- stderr\n%s",
		strings.Join(r.args, " "), r.code, r.elapsed(), r.stdout, r.stderr)
}

// benchFirstWrite buffers output and remembers when its first byte came.
type benchFirstWrite struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first time.Time
}

func (w *benchFirstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() && len(p) > 0 {
		w.first = time.Now()
	}
	return w.buf.Write(p)
}

// benchCtl runs pantherctl like fleettest's Fleet.Ctl (same binary, working
// dir and environment) but keeps the times, the peak RSS and the CPU time
// of the process.
func benchCtl(tb testing.TB, f *fleettest.Fleet, args ...string) benchRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Bin.Ctl, args...)
	cmd.Dir, cmd.Env = f.Dir, f.Env()
	out := &benchFirstWrite{}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	r := benchRun{args: args, start: time.Now()}
	err := cmd.Run()
	r.end = time.Now()
	r.stdout, r.stderr, r.firstOut = out.buf.String(), errb.String(), out.first
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -1
		r.stderr += "\n" + err.Error()
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
		r.cpu = ps.UserTime() + ps.SystemTime()
	}
	return r
}

// benchMustCtl is benchCtl failing the benchmark unless pantherctl exits 0.
func benchMustCtl(tb testing.TB, f *fleettest.Fleet, args ...string) benchRun {
	tb.Helper()
	r := benchCtl(tb, f, args...)
	if r.code != 0 {
		tb.Fatalf("%s", r)
	}
	return r
}

// benchLine is one time-stamped line of a log.
type benchLine struct {
	t    time.Time
	text string
}

// benchCtlLogs reads the controller-side deploy logs named by the --json
// summary lines of a pantherctl deploy run, by host.
func benchCtlLogs(tb testing.TB, f *fleettest.Fleet, r benchRun) map[string][]benchLine {
	tb.Helper()
	logs := map[string][]benchLine{}
	for _, line := range strings.Split(r.stdout, "\n") {
		var s struct {
			Summary bool   `json:"summary"`
			Host    string `json:"host"`
			Log     string `json:"log"`
		}
		if json.Unmarshal([]byte(line), &s) != nil || !s.Summary || s.Log == "" {
			continue
		}
		p := s.Log
		if !filepath.IsAbs(p) {
			p = filepath.Join(f.Dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatalf("controller log of %s: %v", s.Host, err)
		}
		// Runs in the same second share a log file (its name has the time
		// to the second) and append to it: keep this run's lines only.
		for _, l := range benchParseLines(string(b), time.RFC3339Nano) {
			if !l.t.Before(r.start) {
				logs[s.Host] = append(logs[s.Host], l)
			}
		}
	}
	return logs
}

// benchHclogLayout is go-hclog's default time stamp layout (pantherctl's stderr).
const benchHclogLayout = "2006-01-02T15:04:05.000Z0700"

// benchParseLines splits "<time> <text>" lines; lines without a time stamp
// are skipped.
func benchParseLines(s, layout string) []benchLine {
	var out []benchLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		stamp, text, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		t, err := time.Parse(layout, stamp)
		if err != nil {
			continue
		}
		out = append(out, benchLine{t: t, text: text})
	}
	return out
}

// benchFind returns the time of the first line containing substr.
func benchFind(lines []benchLine, substr string) (time.Time, bool) {
	for _, l := range lines {
		if strings.Contains(l.text, substr) {
			return l.t, true
		}
	}
	return time.Time{}, false
}

// benchSamples collects per-iteration values by metric and reports medians.
type benchSamples map[string][]float64

func (s benchSamples) add(metric string, v float64) { s[metric] = append(s[metric], v) }

func (s benchSamples) addDur(metric string, d time.Duration) {
	s.add(metric, float64(d.Microseconds())/1000)
}

func (s benchSamples) median(metric string) float64 {
	v := slices.Clone(s[metric])
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (s benchSamples) max(metric string) float64 {
	if len(s[metric]) == 0 {
		return 0
	}
	return slices.Max(s[metric])
}

// report reports the median of every metric collected.
func (s benchSamples) report(b *testing.B) {
	for m := range s {
		b.ReportMetric(s.median(m), m)
	}
}

// benchCPU is the machine's CPU time counters from /proc/stat, in clock
// ticks. Busy counts everything but idle and iowait, steal included (time
// the hypervisor gave to other machines is not ours either).
type benchCPU struct{ busy, total float64 }

func benchMachineCPU(tb testing.TB) benchCPU {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var c benchCPU
	// user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user and nice.
	for i, fld := range strings.Fields(line)[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseFloat(fld, 64)
		c.total += v
		if i != 3 && i != 4 {
			c.busy += v
		}
	}
	return c
}

// benchBusy is how busy all the machine's CPUs were between a and b.
func benchBusy(a, b benchCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * (b.busy - a.busy) / (b.total - a.total)
}

// benchSandboxCPU is the CPU time used so far by every sandbox this test
// process booted (their cgroups are "panther-sandboxtest-<our pid>-..."),
// or -1 if the cgroups cannot be read.
func benchSandboxCPU() time.Duration {
	var total time.Duration
	found := false
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		dirs, _ := filepath.Glob(filepath.Join(root, fmt.Sprintf("panther-sandboxtest-%d-*", os.Getpid())))
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "cpu.stat"))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
					us, _ := strconv.ParseInt(v, 10, 64)
					total += time.Duration(us) * time.Microsecond
					found = true
				}
			}
		}
		if found {
			return total
		}
	}
	return -1
}

// benchLoad1 is the machine's one-minute load average.
func benchLoad1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// benchUsage is a snapshot of the machine's CPU counters and of the CPU
// time this benchmark's own processes used so far: the test process, its
// waited-for children (pantherctl, nsenter) and the sandboxes' cgroups.
type benchUsage struct {
	machine benchCPU
	own     time.Duration
}

func benchUsageNow(tb testing.TB) benchUsage {
	tb.Helper()
	u := benchUsage{machine: benchMachineCPU(tb)}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			u.own += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if sb := benchSandboxCPU(); sb > 0 {
		u.own += sb
	}
	return u
}

// benchContention reports how loaded the machine was while the benchmark
// ran: the share of all its CPUs busy over the measured window, the share
// busy with processes other than the benchmark's own (other engineers'
// builds and tests share the machine), and the load average at the end.
func benchContention(b *testing.B, from benchUsage) {
	to := benchUsageNow(b)
	b.ReportMetric(benchBusy(from.machine, to.machine), "%machine-busy")
	if total := (to.machine.total - from.machine.total) / benchClockTicks; total > 0 {
		others := (to.machine.busy-from.machine.busy)/benchClockTicks - (to.own - from.own).Seconds()
		b.ReportMetric(max(0, 100*others/total), "%others-busy")
	}
	b.ReportMetric(benchLoad1(), "load1")
}

// benchAgentConfig is what the benchmarks' agents get on top of fleettest's
// config: a health settle of 1ms, as good as none. (The fleet's
// "healthSettle": "0s" counts as unset and gives the agent's default of
// 5s, which would hide everything else in a no-op deploy.)
func benchAgentConfig() map[string]any { return map[string]any{"healthSettle": "1ms"} }

// benchNixConfig is the NIX_CONFIG the agents' nix runs with (fleettest gives
// them "sandbox = false" and no substituters).
const benchNixConfig = "experimental-features = nix-command flakes\nsandbox = false\nsubstituters ="

// benchHandScript runs, by hand, the steps an agent runs for a deploy of host
// from flake ref $1 attribute $2, printing a time stamp (µs) before, between
// and after them: nix build, dry-activate, nix-env --set and a switch in a
// transient unit (systemd-run --wait --collect, unit $3). Then, apart, it
// times the command the agent runs besides those steps: the evaluation of
// its validate phase (the host list and the host's config.warnings).
const benchHandScript = `set -e
now() { echo "${EPOCHREALTIME/./}"; }
t0=$(now)
out=$(nix build --json --no-link "$1#nixosConfigurations.$2.config.system.build.toplevel")
top=${out#*\"out\":\"}; top=${top%%\"*}
t1=$(now)
"$top/bin/switch-to-configuration" dry-activate >/dev/null 2>&1
t2=$(now)
nix-env -p /nix/var/nix/profiles/system --set "$top"
t3=$(now)
systemd-run --quiet --wait --collect --unit="$3" "$top/bin/switch-to-configuration" switch
t4=$(now)
nix eval --json "$1#nixosConfigurations" --apply "cs: { hosts = builtins.attrNames cs; warnings = cs.$2.config.warnings; }" >/dev/null
t5=$(now)
echo "$t0 $t1 $t2 $t3 $t4 $t5"
`

// benchByHand is one run of benchHandScript inside a host.
type benchByHand struct {
	total                   time.Duration // the four steps, timed inside the host
	build, dry, profile, sw time.Duration
	enter                   time.Duration // nsenter and bash around them, not in total
	eval                    time.Duration // the agent's validate evaluation, apart, not in total
}

func benchRunByHand(tb testing.TB, h *fleettest.Host, flakeRef, attr string) benchByHand {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	unit := "bench-by-hand-" + benchRandHex(4)
	cmd := h.SB.Command(ctx, "bash", "-c", benchHandScript, "bash", flakeRef, attr, unit)
	cmd.Env = append(cmd.Env, "NIX_CONFIG="+benchNixConfig)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	outside := time.Since(start)
	if err != nil {
		tb.Fatalf("by hand in %s: %v\n%s%s", h.Name, err, out.String(), errb.String())
	}
	var t [6]int64
	if n, _ := fmt.Sscan(strings.TrimSpace(out.String()), &t[0], &t[1], &t[2], &t[3], &t[4], &t[5]); n != len(t) {
		tb.Fatalf("by hand in %s: no time stamps in %q", h.Name, out.String())
	}
	us := func(i, j int) time.Duration { return time.Duration(t[j]-t[i]) * time.Microsecond }
	return benchByHand{total: us(0, 4), build: us(0, 1), dry: us(1, 2), profile: us(2, 3), sw: us(3, 4),
		enter: outside - us(0, 5), eval: us(4, 5)}
}

func benchRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// benchSourceDir is where host's agent extracted the newest uploaded source.
func benchSourceDir(tb testing.TB, h *fleettest.Host) string {
	tb.Helper()
	const dir = "/var/lib/panther-agent/sources"
	entries, err := os.ReadDir(h.SB.Path(dir))
	if err != nil {
		tb.Fatalf("%s: sources: %v", h.Name, err)
	}
	var newest os.DirEntry
	var newestT time.Time
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() {
			continue
		}
		if info.ModTime().After(newestT) {
			newest, newestT = e, info.ModTime()
		}
	}
	if newest == nil {
		tb.Fatalf("%s: no source in %s", h.Name, dir)
	}
	return filepath.Join(dir, newest.Name())
}

// benchDeploySegments splits a confirmed switch deploy of one host into
// contiguous segments, from the process start to its exit: the stderr of
// `--log-level debug` marks the tailnet, the controller log (time stamped
// by pantherctl as it receives each event) the rest.
func benchDeploySegments(tb testing.TB, r benchRun, log []benchLine) map[string]time.Duration {
	tb.Helper()
	stderr := benchParseLines(r.stderr, benchHclogLayout)
	type mark struct {
		lines []benchLine
		sub   string
	}
	// Segment i runs from the mark before it (the process start for the
	// first) to mark i; the process exit ends the last. "start" is exec,
	// flags, key, packing the flake and starting tsnet; "dial" opens the
	// controller log and starts the gRPC connection; "upload-check" ends
	// when HasSource answered; the agent's phases are as pantherctl saw
	// them arrive, so each also holds the agent's work between phases.
	names := []string{"start", "tailnet-up", "dial", "upload-check", "deploy-request",
		"validate", "build", "dry-activate", "switch", "health", "confirm", "exit"}
	marks := []mark{
		{stderr, "tailnet: started"},
		{stderr, "tailnet: up"},
		{log, "==> upload"},
		{log, "nothing sent"},
		{log, "==> validate"},
		{log, "==> build"},
		{log, "==> dry-activate"},
		{log, "==> switch"}, // the phase; "==> switched to generation" comes later
		{log, "==> health"},
		{log, "==> switched to generation"},
		{log, "result: confirmed"},
	}
	times := []time.Time{r.start}
	for _, m := range marks {
		t, ok := benchFind(m.lines, m.sub)
		if !ok {
			tb.Fatalf("no %q in pantherctl's output or log:\n%s\n--- log\n%v", m.sub, r, log)
		}
		times = append(times, t)
	}
	times = append(times, r.end)
	seg := map[string]time.Duration{}
	for i := 1; i < len(times); i++ {
		seg[names[i-1]] = times[i].Sub(times[i-1])
	}
	return seg
}

// benchAgentSegments splits the agent's side of a switch deploy finer, by
// the agent's own time stamps in its deployment log: each phase proper and
// the work between phases (generation lookups, the health baseline, the
// journal), and the switch unit apart from starting it.
func benchAgentSegments(tb testing.TB, log string) map[string]time.Duration {
	tb.Helper()
	segments := []struct{ name, from, to string }{
		{"validate", "[validate] started", "[validate] done"},
		{"build", "[build] started", "[build] done"},
		{"after-build", "[build] done", "[dry-activate] started"},
		{"dry-activate", "[dry-activate] started", "[dry-activate] done"},
		{"before-switch", "[dry-activate] done", "[switch] started"},
		{"switch-start", "[switch] started", "[switch] done"},
		{"switch-unit", "[switch] done", "[switch] switch-to-configuration"},
		{"after-switch", "[switch] switch-to-configuration", "[health] started"},
		{"health", "[health] started", "[health] done"},
		{"arm-confirm", "[health] done", "[confirm] awaiting"},
	}
	at := func(substr string) time.Time {
		t, ok := fleettest.LogTime(log, substr)
		if !ok {
			tb.Fatalf("no %q in the agent's deployment log:\n%s", substr, log)
		}
		return t
	}
	seg := map[string]time.Duration{}
	for _, sg := range segments {
		seg[sg.name] = at(sg.to).Sub(at(sg.from))
	}
	return seg
}

// BenchmarkNoopDeploy (figure 1) deploys the configuration a host already
// runs with `pantherctl deploy --yes` and, right before or after it on the
// same host, runs the same steps by hand in the host (nix build,
// dry-activate, nix-env --set, systemd-run --wait --collect switch). It
// reports the medians of both, their ratio, the time pantherctl adds, and
// where pantherctl's time goes.
func BenchmarkNoopDeploy(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}, AgentConfig: benchAgentConfig()})
	h := f.Hosts["alpha"]
	f.WaitReachable(b, "alpha", time.Minute)
	deploy := []string{"deploy", "alpha", "--yes", "--json", "--log-level", "debug", "--flake", f.Flake}
	benchMustCtl(b, f, deploy...) // the first deploy changes the system; later ones are no-ops
	ref := "path:" + benchSourceDir(b, h)
	benchRunByHand(b, h, ref, "alpha") // warm nix's caches the same way

	s := benchSamples{}
	i := 0
	cpu0 := benchUsageNow(b)
	for b.Loop() {
		var ctl benchRun
		var hand benchByHand
		// Alternate the order, so neither side always runs on a machine
		// the other just warmed or loaded.
		if i%2 == 0 {
			ctl = benchMustCtl(b, f, deploy...)
			hand = benchRunByHand(b, h, ref, "alpha")
		} else {
			hand = benchRunByHand(b, h, ref, "alpha")
			ctl = benchMustCtl(b, f, deploy...)
		}
		i++
		logs := benchCtlLogs(b, f, ctl)
		for name, d := range benchDeploySegments(b, ctl, logs["alpha"]) {
			s.addDur("ms/ctl."+name, d)
		}
		id := fleettest.DeploymentIDFromJSON(ctl.stdout)
		for name, d := range benchAgentSegments(b, h.DeploymentLog(b, id)) {
			s.addDur("ms/agent."+name, d)
		}
		s.addDur("ms/deploy", ctl.elapsed())
		s.addDur("ms/by-hand", hand.total)
		s.addDur("ms/hand.build", hand.build)
		s.addDur("ms/hand.dry-activate", hand.dry)
		s.addDur("ms/hand.profile", hand.profile)
		s.addDur("ms/hand.switch", hand.sw)
		s.addDur("ms/hand.enter", hand.enter)
		s.addDur("ms/hand.eval", hand.eval)
	}
	benchContention(b, cpu0)
	s.report(b)
	ctlMed, handMed := s.median("ms/deploy"), s.median("ms/by-hand")
	b.ReportMetric(ctlMed/handMed, "x-by-hand")
	b.ReportMetric(ctlMed-handMed, "ms-added")
}

// BenchmarkColdStart (figure 2) times `pantherctl status` from the process
// start to the agent's answer (its first byte on stdout), with pantherctl's
// tailnet state persisted by earlier runs: the second run onwards. The
// first run, which registers pantherctl's node, is reported apart.
func BenchmarkColdStart(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	args := []string{"status", "alpha", "--json", "--log-level", "debug"}
	s := benchSamples{}
	first := benchCtl(b, f, args...)
	if first.code != 0 {
		// The agent was not on the tailnet yet: no fair first figure.
		f.WaitReachable(b, "alpha", time.Minute)
	} else {
		s.addDur("ms/first-run-registers", first.firstOut.Sub(first.start))
	}
	cpu0 := benchUsageNow(b)
	for b.Loop() {
		r := benchMustCtl(b, f, args...)
		if r.firstOut.IsZero() {
			b.Fatalf("status printed nothing:\n%s", r)
		}
		s.addDur("ms/first-rpc", r.firstOut.Sub(r.start))
		s.addDur("ms/exit", r.end.Sub(r.start))
		stderr := benchParseLines(r.stderr, benchHclogLayout)
		started, ok1 := benchFind(stderr, "tailnet: started")
		up, ok2 := benchFind(stderr, "tailnet: up")
		if ok1 && ok2 {
			s.addDur("ms/start-to-tsnet-started", started.Sub(r.start))
			s.addDur("ms/tsnet-started-to-up", up.Sub(started))
			s.addDur("ms/up-to-answer", r.firstOut.Sub(up))
		}
	}
	benchContention(b, cpu0)
	s.report(b)
	b.ReportMetric(s.max("ms/first-rpc"), "ms/first-rpc-max")
}

// benchFanOutHosts is the size of the fan-out fleet.
const benchFanOutHosts = 32

// benchNoNetNSEnv names the environment variable that, set to 1, keeps the
// fan-out's hosts in the test's network namespace instead of one each
// (default: one each, as fleettest does).
const benchNoNetNSEnv = "PANTHER_BENCH_NO_NETNS"

// benchInotifyPerSandbox is how many inotify instances one sandbox holds:
// its systemd 3 to 5, its dbus-daemon 1.
const benchInotifyPerSandbox = 6

// benchRequireInotify skips the benchmark (fails it when
// PANTHER_REQUIRE_INTEGRATION=1) unless n more sandboxes fit under the
// machine's fs.inotify.max_user_instances: systemd refuses to boot (exit
// 255, nothing on the console) when it cannot get one, and the common
// default of 128 holds about 20 sandboxes.
func benchRequireInotify(b *testing.B, n int) {
	b.Helper()
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return
	}
	limit, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	inUse := 0
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == "anon_inode:inotify" {
			inUse++
		}
	}
	if need := n * benchInotifyPerSandbox; limit-inUse < need {
		msg := fmt.Sprintf("%d sandboxes need about %d inotify instances; fs.inotify.max_user_instances is %d and %d are in use (raise it: sysctl -w fs.inotify.max_user_instances=1024)",
			n, need, limit, inUse)
		if os.Getenv(sandboxtest.RequireEnv) == "1" {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
}

// BenchmarkFanOut (figure 4) deploys a no-op to 32 agents with --jobs 8
// and, in the same iteration, to one of them alone; the ideal fan-out is
// four batches of that one-host deploy. It reports the ratio to the ideal,
// pantherctl's peak RSS, and the CPU the machine, the hosts and pantherctl
// spent. Each of the 32 sandboxes has its own network namespace, as in the
// other tests; booting them in parallel takes about 25 s on two cores, and
// the first deploy (every agent's first tailnet path) about 20 s, so the
// no-netns mode (PANTHER_BENCH_NO_NETNS=1) is not needed. The sandboxes need
// about 200 inotify instances (see benchRequireInotify).
func BenchmarkFanOut(b *testing.B) {
	hosts := map[string]string{}
	var names []string
	for i := range benchFanOutHosts {
		n := fmt.Sprintf("h%02d", i)
		hosts[n] = "good"
		names = append(names, n)
	}
	benchRequireInotify(b, benchFanOutHosts)
	bootStart := time.Now()
	f := fleettest.New(b, fleettest.Options{Hosts: hosts, NoSandboxNetNS: os.Getenv(benchNoNetNSEnv) == "1",
		AgentConfig: benchAgentConfig(), BootTimeout: 3 * time.Minute})
	boot := time.Since(bootStart)
	all := append(append([]string{"deploy"}, names...), "--jobs", "8", "--yes", "--json", "--keep-going", "--flake", f.Flake)
	one := []string{"deploy", names[0], "--yes", "--json", "--log-level", "debug", "--flake", f.Flake}
	firstStart := time.Now()
	benchMustCtl(b, f, all...) // the first deploy registers, uploads and switches every host
	first := time.Since(firstStart)

	s := benchSamples{}
	cpu0 := benchUsageNow(b)
	for b.Loop() {
		m0, sb0 := benchMachineCPU(b), benchSandboxCPU()
		fan := benchMustCtl(b, f, all...)
		m1, sb1 := benchMachineCPU(b), benchSandboxCPU()
		single := benchMustCtl(b, f, one...)
		sb2 := benchSandboxCPU()
		s.addDur("ms/fan-out-32", fan.elapsed())
		s.addDur("ms/one-host", single.elapsed())
		for name, d := range benchDeploySegments(b, single, benchCtlLogs(b, f, single)[names[0]]) {
			s.addDur("ms/one-host."+name, d)
		}
		s.add("MB/peak-rss", float64(fan.maxRSS)/(1<<20))
		s.add("MB/peak-rss-one-host", float64(single.maxRSS)/(1<<20))
		s.add("cpu-s/pantherctl", fan.cpu.Seconds())
		if sb0 >= 0 && sb1 >= 0 {
			s.add("cpu-s/hosts", (sb1 - sb0).Seconds())
			s.add("cpu-s/one-host", (sb2 - sb1 + single.cpu).Seconds())
		}
		s.add("%machine-busy-fan-out", benchBusy(m0, m1))
		var durs []float64
		for _, line := range strings.Split(fan.stdout, "\n") {
			var sum struct {
				Summary    bool    `json:"summary"`
				DurationMs float64 `json:"durationMs"`
			}
			if json.Unmarshal([]byte(line), &sum) == nil && sum.Summary {
				durs = append(durs, sum.DurationMs)
			}
		}
		if len(durs) > 0 {
			slices.Sort(durs)
			s.add("ms/per-host-median", durs[len(durs)/2])
			s.add("ms/per-host-max", durs[len(durs)-1])
		}
	}
	benchContention(b, cpu0)
	s.report(b)
	// Reported after the loop: b.Loop's start clears metrics reported before.
	b.ReportMetric(boot.Seconds(), "s/boot-32")
	b.ReportMetric(first.Seconds(), "s/first-deploy-32")
	netns := 1.0
	if os.Getenv(benchNoNetNSEnv) == "1" {
		netns = 0
	}
	b.ReportMetric(netns, "netns-per-host")
	ideal := 4 * s.median("ms/one-host")
	b.ReportMetric(ideal, "ms/ideal")
	b.ReportMetric(s.median("ms/fan-out-32")/ideal, "x-ideal")
	b.ReportMetric(s.max("MB/peak-rss"), "MB/peak-rss-max")
}

// benchUploadBytes is the size of the incompressible source of figure 5.
const benchUploadBytes = 20 << 20

// BenchmarkUpload (figure 5) adds 20 MB of random files to the flake and
// deploys with --build-only: each iteration changes one small file so the
// whole source is new to the agent and uploaded, then deploys again with
// nothing changed, which must send nothing. The times are pantherctl's, from
// "==> upload" (the connection is being set up) to the agent's answer.
func BenchmarkUpload(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	blobs := filepath.Join(f.Flake, "bench-blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		buf := make([]byte, benchUploadBytes/20)
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(blobs, fmt.Sprintf("blob-%02d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	f.WaitReachable(b, "alpha", time.Minute)
	args := []string{"deploy", "alpha", "--build-only", "--json", "--flake", f.Flake}
	upload := func(r benchRun) (time.Duration, int64, int64) {
		log := benchCtlLogs(b, f, r)["alpha"]
		start, ok := benchFind(log, "==> upload")
		if !ok {
			b.Fatalf("no upload in the log:\n%s", r)
		}
		var archive int64
		for _, l := range log {
			if i := strings.Index(l.text, " files, "); i >= 0 && strings.HasPrefix(l.text, "==> upload") {
				fmt.Sscanf(l.text[i+len(" files, "):], "%d bytes", &archive)
			}
		}
		for _, l := range log {
			if strings.Contains(l.text, "nothing sent") {
				return l.t.Sub(start), 0, archive
			}
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l.text), "upload done in "); ok {
				var sent int64
				if _, after, ok := strings.Cut(rest, "("); ok {
					fmt.Sscanf(after, "%d bytes", &sent)
				}
				return l.t.Sub(start), sent, archive
			}
		}
		b.Fatalf("no upload result in the log:\n%s\n%v", r, log)
		return 0, 0, 0
	}
	s := benchSamples{}
	cpu0 := benchUsageNow(b)
	for b.Loop() {
		if err := os.WriteFile(filepath.Join(blobs, "nonce"), []byte(benchRandHex(8)), 0o644); err != nil {
			b.Fatal(err)
		}
		d, sent, archive := upload(benchMustCtl(b, f, args...))
		if sent < benchUploadBytes {
			b.Fatalf("sent %d bytes of a %d-byte archive, want all of it", sent, archive)
		}
		s.addDur("ms/upload-20MB", d)
		s.add("MB/archive", float64(archive)/1e6)
		s.add("MB/s", float64(sent)/1e6/d.Seconds())
		d, sent, _ = upload(benchMustCtl(b, f, args...))
		s.addDur("ms/unchanged-check", d)
		s.add("bytes/unchanged", float64(sent))
	}
	benchContention(b, cpu0)
	s.report(b)
	b.ReportMetric(s.max("bytes/unchanged"), "bytes/unchanged-max")
}

// benchIdleWindow is how long one iteration of BenchmarkAgentIdle watches.
const benchIdleWindow = 60 * time.Second

// benchClockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat (100 on every Linux architecture Go supports).
const benchClockTicks = 100

// BenchmarkAgentIdle (figure 6) watches the agent of a host that was just
// deployed and confirmed, idle for a minute: its resident memory (VmRSS,
// sampled every second; RssAnon and RssFile split it) and its CPU share
// (utime+stime over the window), read from /proc inside the sandbox.
// Run it with -benchtime 1x: each iteration is one 60-second window.
func BenchmarkAgentIdle(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}, AgentConfig: benchAgentConfig()})
	h := f.Hosts["alpha"]
	f.WaitReachable(b, "alpha", time.Minute)
	benchMustCtl(b, f, "deploy", "alpha", "--yes", "--flake", f.Flake)
	pid := h.AgentPID(b)
	if pid == 0 {
		b.Fatalf("agent not running:\n%s", h.AgentJournal())
	}
	proc := func(name string) string { return h.SB.Path(fmt.Sprintf("/proc/%d/%s", pid, name)) }
	ticks := func() int64 {
		raw, err := os.ReadFile(proc("stat"))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime 14 and stime 15.
		_, rest, _ := strings.Cut(string(raw), ") ")
		fl := strings.Fields(rest)
		ut, _ := strconv.ParseInt(fl[11], 10, 64)
		st, _ := strconv.ParseInt(fl[12], 10, 64)
		return ut + st
	}
	status := func() map[string]float64 {
		raw, err := os.ReadFile(proc("status"))
		if err != nil {
			b.Fatal(err)
		}
		m := map[string]float64{}
		for _, l := range strings.Split(string(raw), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseFloat(f[0], 64)
				m[k] = n / 1024 // MiB
			}
		}
		return m
	}
	s := benchSamples{}
	cpu0 := benchUsageNow(b)
	for b.Loop() {
		t0, c0 := time.Now(), ticks()
		var rss []float64
		var last map[string]float64
		for time.Since(t0) < benchIdleWindow {
			last = status()
			rss = append(rss, last["VmRSS"])
			time.Sleep(time.Second)
		}
		c1, wall := ticks(), time.Since(t0)
		s.add("MB/rss-max", slices.Max(rss))
		s.add("MB/rss-anon", last["RssAnon"])
		s.add("MB/rss-file", last["RssFile"])
		s.add("MB/hwm", last["VmHWM"])
		s.add("%cpu", 100*float64(c1-c0)/benchClockTicks/wall.Seconds())
	}
	if h.AgentPID(b) != pid {
		b.Fatalf("the agent restarted during the window:\n%s", h.AgentJournal())
	}
	benchContention(b, cpu0)
	s.report(b)
}
