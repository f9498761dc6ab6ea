package simfleet

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestSimFleetChild serves a fleet for StartProcess (a no-op otherwise).
func TestSimFleetChild(t *testing.T) {
	if ServeChild() {
		os.Exit(0)
	}
}

// The real pantherctl deploys a simulated fleet through the loopback
// dialer: every host uploaded once, switched and confirmed.
func TestDeploySimulatedFleet(t *testing.T) {
	hosts := Hosts(20)
	s := Script{Build: 20 * time.Millisecond, Switch: 20 * time.Millisecond}
	f, err := Start(hosts, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	w, err := NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := w.Deploy(t.Context(), &Dialer{Addrs: f.Addrs}, hosts, "--jobs", "5")
	t.Log(r)
	if r.Code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	if u, d, c := f.Count.Uploads.Load(), f.Count.Deploys.Load(), f.Count.Confirms.Load(); u != 20 || d != 20 || c != 20 {
		t.Errorf("uploads %d, deploys %d, confirms %d; want 20 each", u, d, c)
	}
	// 4 rounds of 40 ms at least.
	if min := Model(20, 5, s.HostTime()); r.Wall < min {
		t.Errorf("wall %v is below the model's %v: the jobs limit was not kept", r.Wall, min)
	}
	// A second deploy finds the source on every agent.
	r = w.Deploy(t.Context(), &Dialer{Addrs: f.Addrs}, hosts[:3], "--jobs", "3")
	if r.Code != 0 || f.Count.Uploads.Load() != 20 || f.Count.Confirms.Load() != 23 {
		t.Errorf("second deploy: %s; uploads %d confirms %d", r, f.Count.Uploads.Load(), f.Count.Confirms.Load())
	}
}

// The fleet in another process answers the same.
func TestSimFleetProcess(t *testing.T) {
	hosts := Hosts(5)
	p, err := StartProcess(t.Context(), os.Args[0], []string{"-test.run=^TestSimFleetChild$"}, hosts, Script{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Addrs) != 5 || !strings.HasPrefix(p.Addrs["sim0003"], "127.0.0.1:") {
		t.Fatalf("addrs = %v", p.Addrs)
	}
	w, err := NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r := w.Deploy(t.Context(), &Dialer{Addrs: p.Addrs}, hosts, "--jobs", "5"); r.Code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
	if p.CPU() <= 0 {
		t.Errorf("the child's CPU time reads %v", p.CPU())
	}
}

func TestModel(t *testing.T) {
	for _, tt := range []struct {
		n, jobs int
		want    time.Duration
	}{{1000, 1, 1000 * time.Second}, {1000, 32, 32 * time.Second}, {1000, 1000, time.Second}, {5, 0, 5 * time.Second}} {
		if got := Model(tt.n, tt.jobs, time.Second); got != tt.want {
			t.Errorf("Model(%d, %d) = %v, want %v", tt.n, tt.jobs, got, tt.want)
		}
	}
}

// A phase longer than the controller's stall timeout (6 s) is fine: the
// fake agent sends heartbeats meanwhile, as the real one does.
func TestLongPhaseHeartbeats(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 7 s")
	}
	hosts := Hosts(1)
	f, err := Start(hosts, Script{Build: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	w, err := NewWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r := w.Deploy(t.Context(), &Dialer{Addrs: f.Addrs}, hosts); r.Code != 0 {
		t.Fatalf("want exit 0: %s", r)
	}
}
