package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// TestFleetDiff: a prompted deploy of three NixOS hosts (real nix, systemd
// sandboxes, tailnet) shows, before its one question, the change across
// the batch: two hosts get lab-tool 1.1 and restart lab-hello, the third
// drops lab-tool and needs a reboot for its new kernel. "n" changes
// nothing; with --diff full --json the diff is one JSON line with each
// host's detail, and "y" switches the hosts it was shown for.
func TestFleetDiff(t *testing.T) {
	hosts := []string{"alpha", "beta", "gamma"}
	initial := map[string]string{}
	for _, h := range hosts {
		initial[h] = nixtest.ToolV1Variant
	}
	f := fleettest.New(t, fleettest.Options{Hosts: initial, InitialGeneration: true})
	x := &flFleet{Fleet: f}
	f.SetVariant("alpha", nixtest.ToolV2Variant)
	f.SetVariant("beta", nixtest.ToolV2Variant)
	f.SetVariant("gamma", nixtest.NewKernel)
	journals := func() map[string][]string {
		s := map[string][]string{}
		for _, h := range hosts {
			s[h] = f.Hosts[h].Deployments(t)
		}
		return s
	}
	newRecords := func(before map[string][]string) map[string][]*journal.Record {
		out := map[string][]*journal.Record{}
		for _, h := range hosts {
			for _, id := range f.Hosts[h].Deployments(t) {
				if !slices.Contains(before[h], id) {
					out[h] = append(out[h], flRecord(t, f.Hosts[h], id))
				}
			}
		}
		return out
	}
	v1 := map[string]string{}
	for _, h := range hosts {
		v1[h] = f.Hosts[h].CurrentSystem(t)
	}

	t.Run("SummaryAtThePrompt", func(t *testing.T) {
		before := journals()
		p := x.startOnTerminal(t, "deploy", "alpha", "beta", "gamma", "--flake", f.Flake)
		p.waitStderr(t, "[y/N]", 3*time.Minute)
		p.answer(t, "n\n")
		r := p.wait(t, time.Minute)
		question := r.Stderr[:strings.Index(r.Stderr, "[y/N]")]
		for _, want := range []string{
			"fleet diff: 3 hosts",
			"2 hosts (alpha, beta) get lab-tool 1.1 (was 1.0), +32.0 KiB each",
			"1 host (gamma) drops lab-tool 1.0, -16.",                                          // nix adds a little
			"2 hosts (alpha, beta) get nixos-system 26.05.lab_tool_v2 (was 26.05.lab_tool_v1)", // each host's own toplevel, added up
			"2 hosts (alpha, beta) restart: lab-hello.service",
			"1 host (gamma) needs a reboot afterwards (new kernel",
			"switch 3 host(s) (alpha, beta, gamma)?",
		} {
			if !strings.Contains(question, want) {
				t.Errorf("before the question, want %q:\n%s", want, question)
			}
		}
		if !strings.Contains(question, "closure: ") || !strings.Contains(question, " in total, ") {
			t.Errorf("no closure size change before the question:\n%s", question)
		}
		if strings.Count(r.Stderr, "fleet diff:") != 1 || strings.Contains(question, "alpha: ") && strings.Contains(question, "    lab-tool 1.0 → 1.1") {
			t.Errorf("want one summary without per-host detail:\n%s", r.Stderr)
		}
		if r.Code == 0 {
			t.Errorf("answered n, want a failure exit: %s", r)
		}
		// One deployment per host (held for approval, or a dry
		// activation): none switched.
		added := newRecords(before)
		for _, h := range hosts {
			recs := added[h]
			if len(recs) != 1 || recs[0].State == journal.StateConfirmed || recs[0].NewPath == "" {
				t.Errorf("%s: want one deployment that built and did not switch, got %d", h, len(recs))
			}
			if got := f.Hosts[h].CurrentSystem(t); got != v1[h] {
				t.Errorf("%s: answered n, yet it runs %s", h, got)
			}
		}
	})

	t.Run("FullJSONThenYes", func(t *testing.T) {
		before := journals()
		p := x.startOnTerminal(t, "deploy", "alpha", "beta", "gamma", "--json", "--flake", f.Flake, "--diff", "full")
		p.waitStderr(t, "[y/N]", 3*time.Minute)
		p.answer(t, "y\n")
		r := p.wait(t, 3*time.Minute)
		if r.Code != 0 {
			t.Fatalf("want exit 0: %s", r)
		}
		var diff struct {
			Hosts    int `json:"hosts"`
			Packages []struct {
				Name, Old, New string
				Hosts          []string
				SizeMin        int64 `json:"sizeMin"`
			} `json:"packages"`
			Closure struct {
				Known int   `json:"known"`
				Delta int64 `json:"delta"`
			} `json:"closure"`
			PerHost []struct {
				Name    string `json:"name"`
				Changes []struct {
					Name, Old, New string
				} `json:"changes"`
				Reboot string `json:"reboot"`
			} `json:"perHost"`
		}
		found := 0
		for _, l := range strings.Split(r.Stdout, "\n") {
			if strings.HasPrefix(l, `{"fleetDiff":`) {
				found++
				var line struct {
					FleetDiff json.RawMessage `json:"fleetDiff"`
				}
				if err := json.Unmarshal([]byte(l), &line); err != nil || json.Unmarshal(line.FleetDiff, &diff) != nil {
					t.Fatalf("fleet diff line %q: %v", l, err)
				}
			}
		}
		if found != 1 {
			t.Fatalf("want one fleetDiff line on stdout, got %d:\n%s", found, r.Stdout)
		}
		if strings.Contains(r.Stderr, "fleet diff:") {
			t.Errorf("--json: the diff is for machines, not on stderr:\n%s", r.Stderr)
		}
		tool := slices.IndexFunc(diff.Packages, func(p struct {
			Name, Old, New string
			Hosts          []string
			SizeMin        int64 `json:"sizeMin"`
		}) bool {
			return p.Name == nixtest.ToolPackage && p.New == nixtest.ToolV2
		})
		if diff.Hosts != 3 || tool < 0 || !slices.Equal(diff.Packages[tool].Hosts, []string{"alpha", "beta"}) ||
			diff.Packages[tool].Old != nixtest.ToolV1 || diff.Packages[tool].SizeMin != 32<<10 {
			t.Errorf("fleet diff = %+v", diff)
		}
		if diff.Closure.Known != 3 || diff.Closure.Delta <= 0 {
			t.Errorf("closure = %+v, want 3 hosts known and a growth", diff.Closure)
		}
		if len(diff.PerHost) != 3 || diff.PerHost[2].Name != "gamma" || !strings.Contains(diff.PerHost[2].Reboot, "kernel") ||
			!slices.ContainsFunc(diff.PerHost[0].Changes, func(c struct{ Name, Old, New string }) bool { return c.Name == nixtest.ToolPackage }) {
			t.Errorf("per host = %+v", diff.PerHost)
		}
		// Switched to what they dry-activated, and confirmed (one
		// deployment per host with an agent that holds it for approval,
		// else a dry activation and a switch).
		added := newRecords(before)
		for _, h := range hosts {
			recs := added[h]
			slices.SortFunc(recs, func(a, b *journal.Record) int { return a.Started.Compare(b.Started) })
			if len(recs) == 0 || len(recs) > 2 {
				t.Errorf("%s: %d new deployments", h, len(recs))
				continue
			}
			last := recs[len(recs)-1]
			if last.State != journal.StateConfirmed || last.NewPath != recs[0].NewPath || f.Hosts[h].CurrentSystem(t) != last.NewPath {
				t.Errorf("%s: want the dry-activated %s switched and confirmed, got %s %s (running %s)", h, recs[0].NewPath, last.NewPath, last.State, f.Hosts[h].CurrentSystem(t))
			}
		}
	})
}
