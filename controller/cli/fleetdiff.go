package cli

import (
	"encoding/json"
	"fmt"

	"github.com/pantheros/panther/controller/fleetdiff"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Values of deploy's --diff.
const (
	diffNone    = "none"    // no fleet diff at the prompt
	diffSummary = "summary" // the aggregated change across the batch
	diffFull    = "full"    // and each host's own change
)

func validDiff(mode string) bool {
	return mode == diffNone || mode == diffSummary || mode == diffFull
}

// showFleetDiff shows, before the batch's one prompt, what the switch would
// change across the ready hosts (controller/fleetdiff): on stderr beside
// the question, or as one {"fleetDiff": …} line on stdout with --json.
func (c *CLI) showFleetDiff(ready []*hostRun, mode string) {
	if mode == diffNone {
		return
	}
	hosts := make([]fleetdiff.Host, 0, len(ready))
	for _, hr := range ready {
		hosts = append(hosts, fleetdiff.Host{Name: hr.host.Name, Summary: fleetSummary(hr.summary)})
	}
	d := fleetdiff.Aggregate(hosts, fleetdiff.Options{PerHost: mode == diffFull})
	if c.g.json {
		b, err := json.Marshal(struct {
			FleetDiff fleetdiff.Diff `json:"fleetDiff"`
		}{d})
		if err == nil {
			fmt.Fprintf(c.io.Stdout, "%s\n", b)
		}
		return
	}
	for _, l := range fleetdiff.Render(d) {
		fmt.Fprintln(c.io.Stderr, l)
	}
}

// fleetSummary converts an agent's summary for the fleet diff.
func fleetSummary(s *agentv1.Summary) fleetdiff.Summary {
	fs := fleetdiff.Summary{
		CurrentPath: s.GetCurrentStorePath(), NewPath: s.GetNewStorePath(),
		CurrentVersion: s.GetCurrentVersion(), NewVersion: s.GetNewVersion(),
		CurrentClosureSize: s.GetCurrentClosureSize(), NewClosureSize: s.GetNewClosureSize(),
		Stop: s.GetWouldStop(), Restart: s.GetWouldRestart(), Reload: s.GetWouldReload(), Start: s.GetWouldStart(),
		RestartSystemd: s.GetWouldRestartSystemd(), RebootRequired: s.GetRebootRequired(), NotActivatable: s.GetNotActivatable(),
	}
	for _, ch := range s.GetClosureChanges() {
		fs.Changes = append(fs.Changes, fleetdiff.Change{Name: ch.Name, Old: ch.OldVersion, New: ch.NewVersion, SizeBytes: ch.SizeDeltaBytes})
	}
	return fs
}
