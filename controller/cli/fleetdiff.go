package cli

import (
	"encoding/json"
	"fmt"

	"github.com/pantheros/panther/controller/fleetdiff"
	"github.com/pantheros/panther/controller/rollout"
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
func (c *CLI) showFleetDiff(ready []*rollout.HostReport, mode string) {
	if mode == diffNone {
		return
	}
	hosts := make([]fleetdiff.Host, 0, len(ready))
	for _, hr := range ready {
		if hr.Summary != nil {
			hosts = append(hosts, fleetdiff.Host{Name: hr.Host.Name, Summary: fleetSummary(hr.Summary)})
		}
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

// fleetSummary converts a host's dry-activation summary for the fleet diff.
func fleetSummary(s *rollout.Summary) fleetdiff.Summary {
	fs := fleetdiff.Summary{
		CurrentPath: s.CurrentStorePath, NewPath: s.NewStorePath,
		CurrentVersion: s.CurrentVersion, NewVersion: s.NewVersion,
		CurrentClosureSize: s.CurrentClosureSize, NewClosureSize: s.NewClosureSize,
		Stop: s.WouldStop, Restart: s.WouldRestart, Reload: s.WouldReload, Start: s.WouldStart,
		RestartSystemd: s.WouldRestartSystemd, RebootRequired: s.RebootRequired, NotActivatable: s.NotActivatable,
	}
	for _, ch := range s.ClosureChanges {
		fs.Changes = append(fs.Changes, fleetdiff.Change{Name: ch.Name, Old: ch.OldVersion, New: ch.NewVersion, SizeBytes: ch.SizeBytes})
	}
	return fs
}
