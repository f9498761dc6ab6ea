package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestPreflightReachableAndUnreachable runs the checklist against one real
// agent and one host that is in the flake but has no machine behind it.
func TestPreflightReachableAndUnreachable(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": nixtest.Warnings}})
	f.SetVariant("ghost", nixtest.Good) // in the flake, not on the tailnet
	waitReachable(t, f, "alpha")

	r := f.MustCtl(3, "preflight", "--all", "--flake", f.Flake, "--timeout", "10s")
	t.Logf("preflight --all:\n%s", r.Stdout)
	rows := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		for _, check := range []string{"flake evaluates", "in flake", "agent reachable", "config.warnings"} {
			if strings.HasPrefix(line, check+" ") {
				rest := strings.Fields(strings.TrimPrefix(line, check))
				if len(rest) >= 2 {
					rows[check+" "+rest[0]] = strings.Join(rest[1:], " ")
				}
			}
		}
	}
	for key, want := range map[string]string{
		"flake evaluates -":     "ok 2 hosts: alpha, ghost",
		"in flake alpha":        "ok",
		"agent reachable alpha": "ok rtt ",
		"config.warnings alpha": "WARN 2 warnings",
		"in flake ghost":        "ok",
		"agent reachable ghost": "FAIL",
	} {
		if !strings.HasPrefix(rows[key], want) {
			t.Errorf("%s: %q, want it to start with %q", key, rows[key], want)
		}
	}
	for _, want := range []string{"lab warning one", "Preflight FAILED: 1 of", "ghost: agent reachable"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// The JSON form carries the round-trip time as a number.
	r = f.MustCtl(3, "preflight", "alpha", "ghost", "--flake", f.Flake, "--timeout", "10s", "--json")
	var rtt float64
	var summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if m["summary"] == true {
			summary = m
		}
		if m["check"] == "agent reachable" && m["host"] == "alpha" {
			rtt, _ = m["rttSeconds"].(float64)
		}
	}
	t.Logf("alpha's Status round trip: %.1f ms", rtt*1000)
	if rtt <= 0 || rtt > 5 {
		t.Errorf("alpha rtt %v s", rtt)
	}
	if summary == nil || summary["ok"] != false || summary["exitCode"] != 3.0 {
		t.Errorf("summary %v\n%s", summary, r)
	}

	// Only the reachable host: the checklist passes (warnings do not fail it).
	r = f.MustCtl(0, "preflight", "alpha", "--flake", f.Flake)
	if !strings.Contains(r.Stdout, "Preflight passed") {
		t.Errorf("preflight alpha:\n%s", r)
	}
}

// waitReachable waits until host's agent answers `pantherctl status`: a
// unit that systemd reports active may not listen on the tailnet yet.
func waitReachable(t *testing.T, f *fleettest.Fleet, host string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := f.Ctl("status", host)
		if r.Code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %s\n%s", host, r, f.Hosts[host].AgentJournal())
		}
		time.Sleep(time.Second)
	}
}
