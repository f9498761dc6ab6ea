package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/lab/fleettest"
)

// BenchmarkDeadlineToRollback measures how fast each dead-man acts after
// the confirmation deadline; each iteration switches alpha without
// confirming (--no-confirm, a 2s window):
//
//   - agent: the agent runs; its deadline and the independent timer fire
//     together and one of them starts the rollback (the record says who).
//     start is the log's "[rollback] started", finish the record's finish
//     time (the previous system active, the record final).
//   - timer: the agent is SIGKILLed and stopped once the window is open,
//     and kept down until the rollback is over: the systemd timer alone.
//     start and finish are the dead-man service's ExecMainStart and
//     ExecMainExit timestamps (the previous system's switch-to-configuration
//     switch); the agent is then started to finish the record.
//
// Run it with a count:
//
//	go test -run '^$' -bench DeadlineToRollback -benchtime 3x ./lab/e2e
//
// ns/op is the whole iteration (deploy, health settle, window, rollback)
// and means little; start-ms/op, finish-ms/op and worst-finish-ms are the
// figures.
func BenchmarkDeadlineToRollback(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	h := f.Hosts["alpha"]
	f.WaitReachable(b, "alpha", time.Minute)
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	first := h.CurrentSystem(b)
	f.SetVariant("alpha", "good-v2")
	flags := append([]string{"deploy", "alpha", "--json", "--yes"}, noConfirm(f)...)
	deploy := func(b *testing.B) string {
		r := f.MustCtl(0, append(flags, "--confirm-timeout", "2s", "--flake", f.Flake)...)
		id := fleettest.DeploymentIDFromJSON(r.Stdout)
		if id == "" {
			b.Fatalf("no deployment id:\n%s", r)
		}
		return id
	}
	report := func(b *testing.B, start, finish, worst time.Duration) {
		b.ReportMetric(float64(start.Microseconds())/1000/float64(b.N), "start-ms/op")
		b.ReportMetric(float64(finish.Microseconds())/1000/float64(b.N), "finish-ms/op")
		b.ReportMetric(float64(worst.Microseconds())/1000, "worst-finish-ms")
	}

	b.Run("agent", func(b *testing.B) {
		var start, finish, worst time.Duration
		for i := 0; i < b.N; i++ {
			id := deploy(b)
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
			b.Logf("%s: rollback (by %s) started %v, finished %v after the deadline\n%s", id, rec.RolledBackBy, s.Round(time.Millisecond), e.Round(time.Millisecond), rollbackSteps(log, rec.Deadline))
		}
		report(b, start, finish, worst)
	})

	b.Run("timer", func(b *testing.B) {
		var start, finish, worst time.Duration
		for i := 0; i < b.N; i++ {
			id := deploy(b)
			rec := h.JournalRecord(b, id)
			h.SB.Run(b, "sh", "-c", "systemctl kill -s KILL panther-agent.service; systemctl stop panther-agent.service")
			until := time.Now().Add(time.Minute)
			unit := deadmanUnit(id) + ".service"
			for h.CurrentSystem(b) != first || h.UnitProperty(b, unit, "SubState") != "exited" {
				if time.Now().After(until) {
					b.Fatalf("%s: the dead-man did not roll back (running %s)", id, h.CurrentSystem(b))
				}
				time.Sleep(10 * time.Millisecond)
			}
			s := unitTime(b, h, unit, "ExecMainStartTimestamp").Sub(rec.Deadline)
			e := unitTime(b, h, unit, "ExecMainExitTimestamp").Sub(rec.Deadline)
			start += s
			finish += e
			worst = max(worst, e)
			b.Logf("%s: the timer's rollback started %v, finished %v after the deadline (agent down)", id, s.Round(time.Millisecond), e.Round(time.Millisecond))
			h.SB.Run(b, "systemctl", "start", "panther-agent.service")
			if rec := h.WaitRecord(b, id, time.Minute, journal.StateRolledBack, journal.StateManual, journal.StateConfirmed); rec.RolledBackBy != "deadman" {
				b.Fatalf("%s: %s by %q (%s)", id, rec.State, rec.RolledBackBy, rec.Reason)
			}
			f.WaitReachable(b, "alpha", time.Minute)
		}
		report(b, start, finish, worst)
	})
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
