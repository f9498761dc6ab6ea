package simfleet

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchScript is one simulated host's switch: 350 ms of agent time.
var benchScript = Script{Build: 150 * time.Millisecond, DryActivate: 50 * time.Millisecond, Switch: 100 * time.Millisecond, Health: 50 * time.Millisecond}

// benchJobs are the --jobs values measured against the model.
var benchJobs = []int{25, 100, 250, 1000}

// BenchmarkSimFleet (issue 12 item 6): the real pantherctl orchestration,
// in this process, deploys a simulated fleet of 1,000 agents served by a
// child process over loopback (no nix, no tailnet). It measures one host's
// deploy time h (a 1-host deploy, median of 5), then for each --jobs value
// the wall time of the whole fleet against
//
//   - the latency model ceil(N/jobs) × h, and
//   - the full model max(ceil(N/jobs) × h, N × c / cores), where c is the
//     CPU time one host costs this machine (pantherctl's and the fake
//     agents', measured in the same run) and cores are the cores other
//     processes left free during the run (the machine is shared; from
//     /proc/stat): with many jobs the cores, not the hosts, set the pace;
//
// the resident memory pantherctl adds per host at its peak, and its CPU per
// host. PANTHER_SIMFLEET_HOSTS overrides N (default 1000). One iteration is
// one sweep; ratios are medians over the iterations.
func BenchmarkSimFleet(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("PANTHER_SIMFLEET_HOSTS")); err == nil && v > 0 {
		n = v
	}
	hosts := Hosts(n)
	p, err := StartProcess(b.Context(), os.Args[0], []string{"-test.run=^TestSimFleetChild$"}, hosts, benchScript)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	d := &Dialer{Addrs: p.Addrs}
	w, err := NewWorkspace(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cores := float64(runtime.NumCPU())
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	latency, full, walls := map[int][]float64{}, map[int][]float64{}, map[int][]float64{}
	var hs, rssPerHost, ctlCPU, cpuPerHost, availCores []float64
	var peak float64
	for range b.N {
		var one []float64
		for i := range 5 {
			r := w.Deploy(b.Context(), d, hosts[i:i+1], "--jobs", "1")
			if r.Code != 0 {
				b.Fatalf("one host: %s", r)
			}
			one = append(one, ms(r.Wall))
		}
		h := median(one)
		hs = append(hs, h)
		for _, jobs := range benchJobs {
			child0, busy0 := p.CPU(), machineBusy()
			r := w.Deploy(b.Context(), d, hosts, "--jobs", strconv.Itoa(jobs))
			if r.Code != 0 {
				b.Fatalf("%d hosts, --jobs %d: %s", n, jobs, r)
			}
			ours := ms(r.CPU) + ms(p.CPU()-child0)
			c := ours / float64(n) // ms of CPU per host, both sides
			wall := ms(r.Wall)
			// The cores other processes left us: the machine is shared.
			others := max(0, ms(machineBusy()-busy0)-ours)
			avail := max(0.25, cores-others/wall)
			lat := ms(Model(n, jobs, time.Duration(h*float64(time.Millisecond))))
			cpuBound := float64(n) * c / avail
			walls[jobs] = append(walls[jobs], wall)
			latency[jobs] = append(latency[jobs], wall/lat)
			full[jobs] = append(full[jobs], wall/max(lat, cpuBound))
			rssPerHost = append(rssPerHost, float64(r.Added())/float64(n)/1e6)
			ctlCPU = append(ctlCPU, ms(r.CPU)/float64(n))
			cpuPerHost = append(cpuPerHost, c)
			peak = max(peak, float64(r.Added())/1e6)
			availCores = append(availCores, avail)
			b.Logf("%d hosts --jobs %d: wall %.0f ms; latency model %.0f ms (%.2fx); CPU bound %.0f ms (%.2f ms/host, pantherctl %.2f, on %.2f of %.0f cores left by others); RSS +%.1f MB (%.0f KB/host)",
				n, jobs, wall, lat, wall/lat, cpuBound, c, ms(r.CPU)/float64(n), avail, cores, float64(r.Added())/1e6, float64(r.Added())/float64(n)/1e3)
		}
	}
	b.ReportMetric(float64(n), "hosts")
	b.ReportMetric(median(hs), "ms/host")
	worstLatency, worstFull := 0.0, 0.0
	for _, jobs := range benchJobs {
		b.ReportMetric(median(walls[jobs]), fmt.Sprintf("ms/jobs-%d", jobs))
		b.ReportMetric(median(latency[jobs]), fmt.Sprintf("x-latency-model-jobs-%d", jobs))
		b.ReportMetric(median(full[jobs]), fmt.Sprintf("x-model-jobs-%d", jobs))
		worstFull = max(worstFull, median(full[jobs]))
		if jobs <= 100 {
			worstLatency = max(worstLatency, median(latency[jobs]))
		}
	}
	b.ReportMetric(worstLatency, "x-latency-model-max")
	b.ReportMetric(worstFull, "x-model-max")
	b.ReportMetric(slices.Max(rssPerHost), "MB/rss-per-host-max")
	b.ReportMetric(peak, "MB/peak-rss-added-max")
	b.ReportMetric(median(ctlCPU), "ms-cpu-ctl/host")
	b.ReportMetric(median(cpuPerHost), "ms-cpu/host")
	b.ReportMetric(median(availCores), "cores-left")
	b.ReportMetric(load1(), "load1")
	b.ReportMetric(0, "ns/op")
}

// machineBusy is the CPU time all processes of the machine have used
// (/proc/stat: everything but idle and iowait), 0 if unknown.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond // USER_HZ = 100
}

// load1 is the one-minute load average (0 if unknown): the machine is
// shared, and the CPU-bound part of the model assumes all cores.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
