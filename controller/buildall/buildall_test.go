package buildall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBuilder records builds and how many ran at once. A host in fail
// fails like an evaluation error; every build holds its slot for hold so
// that overlapping builds really overlap.
type fakeBuilder struct {
	hold time.Duration
	fail map[string]error

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	built       []string
}

func (f *fakeBuilder) Build(ctx context.Context, host string, log io.Writer) (string, error) {
	f.mu.Lock()
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.built = append(f.built, host)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	fmt.Fprintf(log, "building %s\n", host)
	select {
	case <-time.After(f.hold):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if err := f.fail[host]; err != nil {
		fmt.Fprintf(log, "error: %v\n", err)
		return "", err
	}
	return "/nix/store/0000-nixos-system-" + host, nil
}

func (f *fakeBuilder) max() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInFlight
}

func hostNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("h%02d", i))
	}
	return out
}

func TestJobsBoundsConcurrency(t *testing.T) {
	tests := []struct {
		name  string
		jobs  int
		hosts int
		want  int // observed maximum of builds in flight
	}{
		{name: "one at a time", jobs: 1, hosts: 5, want: 1},
		{name: "two at a time", jobs: 2, hosts: 7, want: 2},
		{name: "three at a time", jobs: 3, hosts: 9, want: 3},
		{name: "more jobs than hosts", jobs: 8, hosts: 3, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fb := &fakeBuilder{hold: 30 * time.Millisecond}
			var mu sync.Mutex
			started := 0
			r := New(fb, Options{Jobs: tt.jobs, OnEvent: func(ev Event) {
				if ev.Kind == Started {
					mu.Lock()
					started++
					mu.Unlock()
				}
			}}, nil)
			sum, err := r.Run(context.Background(), hostNames(tt.hosts))
			if err != nil {
				t.Fatal(err)
			}
			if got := fb.max(); got != tt.want {
				t.Errorf("max builds in flight = %d, want %d", got, tt.want)
			}
			if started != tt.hosts || sum.Passed() != tt.hosts || len(fb.built) != tt.hosts {
				t.Errorf("started %d, passed %d, built %d; want %d each", started, sum.Passed(), len(fb.built), tt.hosts)
			}
		})
	}
}

func TestJobsDefaultsToCPUs(t *testing.T) {
	if got := New(&fakeBuilder{}, Options{}, nil).Jobs(); got < 1 {
		t.Errorf("default Jobs = %d", got)
	}
}

func TestFailureIsolatesOneHost(t *testing.T) {
	evalErr := errors.New("error: evaluation of gamma fails on purpose")
	fb := &fakeBuilder{fail: map[string]error{"gamma": evalErr}}
	dir := filepath.Join(t.TempDir(), "logs", "build")
	var events []string
	r := New(fb, Options{Jobs: 2, LogDir: dir, OnEvent: func(ev Event) {
		events = append(events, ev.Host+" "+string(ev.Kind))
	}}, nil)
	sum, err := r.Run(context.Background(), []string{"alpha", "beta", "gamma", "delta"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Passed() != 3 || sum.Failed() != 1 || sum.Total() != 4 || sum.OK() {
		t.Fatalf("passed %d failed %d total %d ok %v", sum.Passed(), sum.Failed(), sum.Total(), sum.OK())
	}
	for i, want := range []string{"alpha", "beta", "gamma", "delta"} {
		if sum.Results[i].Host != want {
			t.Errorf("result %d is %s, want %s (the order given)", i, sum.Results[i].Host, want)
		}
	}
	g := sum.Results[2]
	if g.OK || !errors.Is(g.Err, evalErr) || g.Log != filepath.Join(dir, "gamma.log") {
		t.Errorf("gamma: %+v", g)
	}
	if a := sum.Results[0]; !a.OK || a.Path != "/nix/store/0000-nixos-system-alpha" {
		t.Errorf("alpha: %+v", a)
	}
	for _, h := range []string{"alpha", "beta", "gamma", "delta"} {
		b, err := os.ReadFile(filepath.Join(dir, h+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "building "+h) {
			t.Errorf("%s.log lacks the builder's output:\n%s", h, b)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "gamma.log"))
	if !strings.Contains(string(b), "FAILED") || !strings.Contains(string(b), "fails on purpose") {
		t.Errorf("gamma.log does not say why it failed:\n%s", b)
	}
	if len(events) != 8 {
		t.Errorf("events = %v, want started and done/failed for each host", events)
	}
}

func TestSummaryText(t *testing.T) {
	tests := []struct {
		name string
		sum  Summary
		want string
	}{
		{
			name: "all built",
			sum: Summary{Elapsed: 1234 * time.Millisecond, Results: []HostResult{
				{Host: "alpha", OK: true}, {Host: "delta", OK: true},
			}},
			want: `
Build summary (1.2s):
Passed: 2
Failed: 0
Total: 2

All hosts built successfully!
`,
		},
		{
			name: "two failed",
			sum: Summary{Elapsed: 3 * time.Second, Results: []HostResult{
				{Host: "alpha", OK: true},
				{Host: "beta", Err: errors.New("build failed"), Log: "logs/build/beta.log"},
				{Host: "gamma-long", Err: errors.New("eval failed"), Log: "logs/build/gamma-long.log"},
				{Host: "delta", Err: errors.New("not\nstarted: context canceled")},
			}},
			want: `
Build summary (3s):
Passed: 1
Failed: 3
Total: 4

Failed hosts:
  beta        logs/build/beta.log
  gamma-long  logs/build/gamma-long.log
  delta       not started: context canceled
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.sum.WriteText(&b)
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestCancelFailsHostsNotStarted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fb := &fakeBuilder{hold: time.Minute}
	r := New(fb, Options{Jobs: 1, OnEvent: func(ev Event) {
		if ev.Kind == Started {
			cancel() // the first build is in flight: stop the run
		}
	}}, nil)
	sum, err := r.Run(ctx, []string{"a", "b", "c"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if sum.Failed() != 3 || len(fb.built) != 1 {
		t.Errorf("failed %d (want 3), built %v (want only a)", sum.Failed(), fb.built)
	}
	if !strings.Contains(sum.Results[2].Err.Error(), "not started") {
		t.Errorf("c: %v", sum.Results[2].Err)
	}
}

func TestNoHosts(t *testing.T) {
	if _, err := New(&fakeBuilder{}, Options{}, nil).Run(context.Background(), nil); !errors.Is(err, ErrNoHosts) {
		t.Errorf("err = %v, want ErrNoHosts", err)
	}
}

func TestUnwritableLogDirFailsTheRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(&fakeBuilder{}, Options{LogDir: filepath.Join(file, "build")}, nil).Run(context.Background(), []string{"a"})
	if err == nil {
		t.Fatal("Run succeeded with a log dir under a file")
	}
}
