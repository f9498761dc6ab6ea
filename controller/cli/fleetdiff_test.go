package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pantheros/panther/controller/rollout"
)

func fleetRun(name, old string) *rollout.HostReport {
	return &rollout.HostReport{Host: rollout.Host{Name: name}, Summary: &rollout.Summary{
		CurrentStorePath: "/nix/store/old-" + name, NewStorePath: "/nix/store/new",
		ClosureChanges:     []rollout.ClosureChange{{Name: "linux", OldVersion: old, NewVersion: "6.18.17", SizeDelta: "+2560.0 KiB", SizeBytes: 2560 << 10}},
		CurrentClosureSize: 1 << 30, NewClosureSize: 1<<30 + 2560<<10,
		WouldRestart:   []string{"nginx.service"},
		RebootRequired: []string{"kernel"},
	}}
}

// The hook before the batch's prompt: the agents' summaries, aggregated.
func TestShowFleetDiff(t *testing.T) {
	runs := []*rollout.HostReport{fleetRun("web1", "6.18.16"), fleetRun("web2", "6.18.16"), fleetRun("web3", "6.18.15")}
	for _, tc := range []struct {
		mode, want, not string
	}{
		{diffSummary, "2 hosts (web1, web2) get linux 6.18.17 (was 6.18.16), +2.5 MiB each", "web3: closure"},
		{diffFull, "web3: closure +2.5 MiB\n    linux 6.18.15 → 6.18.17, +2.5 MiB", ""},
		{diffNone, "", "fleet diff"},
	} {
		var out, errOut bytes.Buffer
		c := &CLI{io: IO{Stdout: &out, Stderr: &errOut}}
		c.showFleetDiff(runs, tc.mode)
		if !strings.Contains(errOut.String(), tc.want) || (tc.not != "" && strings.Contains(errOut.String(), tc.not)) {
			t.Errorf("--diff %s: want %q and not %q in:\n%s", tc.mode, tc.want, tc.not, errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("--diff %s wrote on stdout: %s", tc.mode, out.String())
		}
	}
	var out, errOut bytes.Buffer
	c := &CLI{io: IO{Stdout: &out, Stderr: &errOut}}
	c.g.json = true
	c.showFleetDiff(runs, diffFull)
	var line struct {
		FleetDiff struct {
			Hosts    int `json:"hosts"`
			Packages []struct {
				Hosts []string `json:"hosts"`
			} `json:"packages"`
			PerHost []any `json:"perHost"`
		} `json:"fleetDiff"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line.FleetDiff.Hosts != 3 ||
		len(line.FleetDiff.Packages) != 2 || len(line.FleetDiff.PerHost) != 3 || errOut.Len() != 0 {
		t.Errorf("--json --diff full: %v\nstdout %s\nstderr %s", err, out.String(), errOut.String())
	}
}

func TestDiffFlagIsChecked(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"deploy", "--diff", "some", "web1"}, IO{Stdout: &out, Stderr: &errOut})
	if code != ExitUsage || !strings.Contains(errOut.String(), "--diff must be none, summary or full") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}
