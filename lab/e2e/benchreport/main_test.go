package main

import (
	"strings"
	"testing"
)

const sample = `bench-env: load average at start: 4.2 5.0 6.0 1/200 123
goos: linux
cpu: AMD EPYC
BenchmarkNoopDeploy-2   	       3	1799166791 ns/op	        1.406 x-by-hand	       289.4 ms-added	      1003 ms/deploy	       713.6 ms/by-hand
--- BENCH: BenchmarkNoopDeploy-2
    bench_test.go:427: BenchmarkNotAResult-2 1 2 ns/op
BenchmarkUpload-2       	       3	2836456684 ns/op	  40.37 MB/s	         0 bytes/unchanged-max	       1520.4 ms/upload-20MB
BenchmarkAgentIdle-2    	       1	60000000000 ns/op	  41.5 MB/rss-max	  0.25 %cpu
--- FAIL: BenchmarkFanOut
PASS
`

func parsed(t *testing.T) *results {
	t.Helper()
	r := newResults()
	if err := r.parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	r := parsed(t)
	tests := []struct {
		name, bench, unit string
		want              float64
		present           bool
	}{
		{"ratio", "BenchmarkNoopDeploy", "x-by-hand", 1.406, true},
		{"ns/op kept", "BenchmarkNoopDeploy", "ns/op", 1799166791, true},
		{"last metric of a line", "BenchmarkUpload", "ms/upload-20MB", 1520.4, true},
		{"zero", "BenchmarkUpload", "bytes/unchanged-max", 0, true},
		{"log lines are not results", "BenchmarkNotAResult", "ns/op", 0, false},
		{"a failed benchmark reports nothing", "BenchmarkFanOut", "x-ideal", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := r.get(tt.bench, tt.unit)
			if ok != tt.present || got != tt.want {
				t.Errorf("get(%s, %s) = %v, %v; want %v, %v", tt.bench, tt.unit, got, ok, tt.want, tt.present)
			}
		})
	}
	if r.procs["BenchmarkNoopDeploy"] != 2 {
		t.Errorf("GOMAXPROCS = %d, want 2", r.procs["BenchmarkNoopDeploy"])
	}
	if len(r.failures) != 1 || !strings.Contains(r.failures[0], "BenchmarkFanOut") {
		t.Errorf("failures = %q, want the FanOut one", r.failures)
	}
	if !r.hasEnv("load average at start") || !r.hasEnv("cpu") {
		t.Errorf("env = %q, want the load average and the cpu", r.env)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		g    goal
		want string
	}{
		{"under", 0.5, goal{max: 1, unit: "%"}, "met"},
		{"at the goal", 300, goal{max: 300, unit: "ms"}, "met"},
		{"ratio over", 1.406, goal{max: 1.15, unit: "x"}, "**missed** by 0.26× (+22%)"},
		{"time over", 1520.4, goal{max: 1000, unit: "ms"}, "**missed** by 520 ms (+52%)"},
		{"zero goal", 12, goal{max: 0, unit: "bytes"}, "**missed** by 12 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdict(tt.v, tt.g); got != tt.want {
				t.Errorf("verdict(%v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestTable(t *testing.T) {
	table := parsed(t).table()
	tests := []struct{ name, want string }{
		{"ratio with its measurements", "| 1003 ms | 714 ms | 1.41× | ≤ 1.15× | **missed** by 0.26× (+22%) |"},
		{"met goal", "| 289 ms |  |  | ≤ 300 ms | met |"},
		{"note after the figure", "1520 ms (40 MB/s)"},
		{"missing figure", "not measured (`BenchmarkFanOut` did not report `x-ideal`)"},
		{"missing rollback figure", "not measured (`BenchmarkDeadlineToRollback/timer`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(table, tt.want) {
				t.Errorf("table lacks %q:\n%s", tt.want, table)
			}
		})
	}
	if n := strings.Count(table, "\n"); n != len(goals())+2 {
		t.Errorf("table has %d lines, want %d", n, len(goals())+2)
	}
}

func TestReportExplainsMissedGoals(t *testing.T) {
	rep := parsed(t).report()
	for _, want := range []string{"## Machine", "load average at start: 4.2", "## Figures", "**Failures in this run:**",
		"## 5. Upload", "**What holds it back**: the throughput", "## 6. Agent at rest"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(rep, "## 4.") {
		t.Errorf("report has a fan-out section without fan-out results")
	}
}
