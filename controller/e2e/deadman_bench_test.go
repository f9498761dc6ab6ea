package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/pkg/fleettest"
)

// BenchmarkDeadlineToRollback measures how fast the dead-man acts: each
// iteration switches alpha without confirming (--no-confirm, a 2s window)
// and reads, from the agent's journal record and deployment log, how long
// after the confirmation deadline the rollback started ("[rollback]
// started") and finished (the record's finish time). Run it with a count:
//
//	go test -run '^$' -bench DeadlineToRollback -benchtime 5x ./controller/e2e
//
// ns/op is the whole iteration (deploy, health settle, window, rollback)
// and means little; start-ms/op and finish-ms/op are the figures.
func BenchmarkDeadlineToRollback(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	h := f.Hosts["alpha"]
	f.WaitReachable(b, "alpha", time.Minute)
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	f.SetVariant("alpha", "good-v2")

	var start, finish, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := f.MustCtl(0, "deploy", "alpha", "--json", "--yes", "--no-confirm", "--detach", "--confirm-timeout", "2s", "--flake", f.Flake)
		id := fleettest.DeploymentIDFromJSON(r.Stdout)
		if id == "" {
			b.Fatalf("no deployment id:\n%s", r)
		}
		rec := h.WaitRecord(b, id, time.Minute, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed)
		if rec.State != journal.StateRolledBack {
			b.Fatalf("%s: %s (%s)", id, rec.State, rec.Reason)
		}
		log := h.DeploymentLog(b, id)
		began, ok := fleettest.LogTime(log, "[rollback] started")
		if !ok {
			b.Fatalf("%s: no rollback in the log:\n%s", id, log)
		}
		s, e := began.Sub(rec.Deadline), rec.Finished.Sub(rec.Deadline)
		start += s
		finish += e
		worst = max(worst, e)
		b.Logf("%s: rollback started %v, finished %v after the deadline\n%s", id, s.Round(time.Millisecond), e.Round(time.Millisecond), rollbackSteps(log, rec.Deadline))
	}
	b.ReportMetric(float64(start.Microseconds())/1000/float64(b.N), "start-ms/op")
	b.ReportMetric(float64(finish.Microseconds())/1000/float64(b.N), "finish-ms/op")
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-finish-ms")
}

// rollbackSteps lists the log lines from the rollback on, each with its
// offset from the deadline, to show where the time goes.
func rollbackSteps(log string, deadline time.Time) string {
	var out strings.Builder
	on := false
	for _, line := range strings.Split(log, "\n") {
		on = on || strings.Contains(line, "rolling back:")
		if !on {
			continue
		}
		stamp, text, _ := strings.Cut(line, " ")
		if ts, err := time.Parse(time.RFC3339Nano, stamp); err == nil {
			fmt.Fprintf(&out, "  %+8v %s\n", ts.Sub(deadline).Round(time.Millisecond), text)
		} else if line != "" {
			fmt.Fprintf(&out, "           %s\n", line)
		}
	}
	return out.String()
}
