package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/controller/termsafe"
)

// renderer shows a rollout: it is the core's rollout.Observer. Each host
// has a reporter (plain lines "host: …", live lines on a terminal, or JSON
// lines with --json) that also writes everything to the host's log file.
type renderer struct {
	c *CLI
	// live, if set, makes a live display for the hosts of apply and
	// prepare steps (deploy on a terminal).
	live bool

	mu    sync.Mutex
	hosts map[string]*reporter
	lv    *live
}

var _ rollout.Observer = (*renderer)(nil)

func newRenderer(c *CLI, live bool) *renderer {
	return &renderer{c: c, live: live && c.io.StdoutIsTerminal() && !c.g.json, hosts: map[string]*reporter{}}
}

// add registers host with its log file (nil: none).
func (rd *renderer) add(host string, logw io.Writer) *reporter {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	r := &reporter{c: rd.c, host: host, logw: logw}
	rd.hosts[host] = r
	return r
}

func (rd *renderer) reporter(host string) *reporter {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	r, ok := rd.hosts[host]
	if !ok {
		r = &reporter{c: rd.c, host: host}
		rd.hosts[host] = r
	}
	return r
}

// StepStarted implements rollout.Observer: a live line per host.
func (rd *renderer) StepStarted(s rollout.Step) {
	if !rd.live || s.Kind == rollout.StepRollback || len(s.Hosts) == 0 {
		return
	}
	lv := newLive(rd.c.io.Stdout)
	rd.mu.Lock()
	rd.lv = lv
	rd.mu.Unlock()
	for _, h := range s.Hosts {
		r := rd.reporter(h)
		r.mu.Lock()
		r.live, r.hl = lv, lv.add(h)
		r.mu.Unlock()
	}
}

// StepFinished implements rollout.Observer: the live lines end with each
// host's result.
func (rd *renderer) StepFinished(s rollout.Step, reports []*rollout.HostReport) {
	rd.mu.Lock()
	lv := rd.lv
	rd.lv = nil
	rd.mu.Unlock()
	if lv == nil {
		return
	}
	for _, hr := range reports {
		r := rd.reporter(hr.Host.Name)
		r.mu.Lock()
		hl := r.hl
		r.mu.Unlock()
		if hl != nil {
			code, what := hostOutcome(hr)
			hl.finish(what, code == ExitOK)
		}
	}
	lv.wait()
	for _, hr := range reports {
		r := rd.reporter(hr.Host.Name)
		r.mu.Lock()
		r.live, r.hl = nil, nil
		r.mu.Unlock()
	}
}

// Event implements rollout.Observer.
func (rd *renderer) Event(host string, ev rollout.Event) { rd.reporter(host).event(ev) }

// Note implements rollout.Observer.
func (rd *renderer) Note(host string, n rollout.Note) {
	r := rd.reporter(host)
	if n.Phase != "" {
		r.mu.Lock()
		if r.hl != nil {
			r.hl.setPhase(n.Phase) // the live line only
		}
		r.mu.Unlock()
	}
	switch {
	case n.Text == "":
	case n.OnceAccepted:
		r.lineOnceAccepted("%s", n.Text)
	default:
		r.emit(n.Quiet, n.Text)
	}
}

// reporter prints one host's events for people (or as JSON lines) and
// writes them all to the controller-side log file.
type reporter struct {
	c     *CLI
	host  string
	mu    sync.Mutex
	logw  io.Writer
	start time.Time
	// On a terminal: the live display and this host's line in it.
	live *live
	hl   *hostLine
	// switchEnd holds "switch done" until the switch has ended (switchend.go).
	switchEnd switchEnd
	// pending lines are in the log file but shown only once the agent
	// accepted the request (pending.go).
	pending []string
	// quiet: the log file only (build-all's per-host logs).
	quiet bool
}

func (r *reporter) line(format string, args ...any) {
	r.emit(false, fmt.Sprintf(format, args...))
}

// emit writes s to the log file and shows it: on a terminal a log line
// (quiet) only updates the host's live line.
func (r *reporter) emit(quiet bool, s string) {
	s = termsafe.Line(s) // agent text: never commands for the terminal
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logw != nil {
		fmt.Fprintf(r.logw, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), s)
	}
	r.showLocked(quiet, s)
}

// showLocked shows s on the terminal or stdout (not in the log file).
func (r *reporter) showLocked(quiet bool, s string) {
	if r.c.g.json || r.quiet {
		return
	}
	if r.hl != nil {
		r.hl.setLast(s)
		if !quiet {
			r.live.println(r.host + ": " + s)
		}
		return
	}
	fmt.Fprintf(r.c.io.Stdout, "%s: %s\n", r.host, s)
}

// event shows one agent event: the one event → text mapping of the
// controller (the agent's journal has its own).
func (r *reporter) event(ev rollout.Event) {
	if r.c.g.json && !r.quiet {
		r.mu.Lock()
		fmt.Fprintf(r.c.io.Stdout, `{"host":%q,"event":%s}`+"\n", r.host, client.EventJSON(ev))
		r.mu.Unlock()
	}
	r.showPending()
	hold, before, after := r.switchEnd.observe(ev)
	if before != "" {
		r.line("%s", before)
	}
	if after != "" {
		defer r.line("%s", after)
	}
	if hold {
		return
	}
	switch ev.Kind {
	case rollout.EventPhaseStarted:
		r.mu.Lock()
		if r.hl != nil {
			r.hl.setPhase(ev.Phase.String())
		}
		r.mu.Unlock()
		r.line("==> %s", ev.Phase)
	case rollout.EventPhaseFinished:
		if ev.OK {
			r.line("    %s done in %s", ev.Phase, ev.Elapsed)
		} else {
			r.line("!!  %s FAILED after %s: %s", ev.Phase, ev.Elapsed, ev.Error)
		}
	case rollout.EventLog:
		r.emit(true, "    │ "+ev.Line)
	case rollout.EventWarning:
		r.line("warning: %s", ev.Line)
	case rollout.EventHealth:
		v := "ok"
		if !ev.Health.OK {
			v = "FAILED"
		}
		r.line("    health %s: %s %s", ev.Health.Name, v, ev.Health.Detail)
	case rollout.EventSummary:
		s := ev.Summary
		r.line("    current system: %s (generation %d) %s", orDash(s.CurrentStorePath), s.CurrentGeneration, s.CurrentVersion)
		r.line("    new system:     %s %s", s.NewStorePath, s.NewVersion)
		for _, ch := range s.ClosureChanges {
			r.line("    package %s: %s → %s %s", ch.Name, orDash(ch.OldVersion), orDash(ch.NewVersion), ch.SizeDelta)
		}
		for _, l := range []struct {
			verb  string
			units []string
		}{{"stop", s.WouldStop}, {"restart", s.WouldRestart}, {"reload", s.WouldReload}, {"start", s.WouldStart}} {
			if len(l.units) > 0 {
				r.line("    would %s: %s", l.verb, strings.Join(l.units, ", "))
			}
		}
		r.summaryFacts(s)
	case rollout.EventAwaiting:
		a := ev.Awaiting
		if a.NewGeneration == 0 {
			// Test, then boot: the generation is made by the confirm.
			r.line("==> switched to generation (made by the confirm; the boot default stays on the previous system until then); confirming before %s", a.Deadline.Local().Format(time.TimeOnly))
			break
		}
		r.line("==> switched to generation %d; confirming before %s", a.NewGeneration, a.Deadline.Local().Format(time.TimeOnly))
	case rollout.EventAwaitingApproval:
		r.line("    awaiting approval until %s (nothing changes before it)", ev.Approval.Deadline.Local().Format(time.TimeOnly))
	case rollout.EventResult:
		res := ev.Result
		msg := res.Outcome.String()
		if res.Message != "" {
			msg += ": " + res.Message
		}
		r.line("result: %s", msg)
		for _, cmd := range res.RecoveryCommands {
			r.line("    recover with: %s", cmd)
		}
		if len(res.PreviouslyFailedUnits) > 0 {
			r.line("    failed before the switch already (not held against it): %s", strings.Join(res.PreviouslyFailedUnits, ", "))
		}
		if len(res.RebootRequired) > 0 && res.Outcome != rollout.OutcomeRebootRequired && res.Outcome != rollout.OutcomeRolledBack {
			r.line("    reboot required: the new %s take effect at the next boot", strings.Join(res.RebootRequired, ", "))
		}
	}
}

// summaryFacts shows what the summary says besides units: what dry-activate
// would also do, what needs a reboot, and what a switch cannot do.
func (r *reporter) summaryFacts(s *rollout.Summary) {
	if len(s.WouldNotStop) > 0 {
		r.line("    would NOT stop (changed): %s", strings.Join(s.WouldNotStop, ", "))
	}
	if s.WouldRestartSystemd {
		r.line("    would restart systemd")
	}
	if len(s.RebootRequired) > 0 {
		r.line("    reboot required: the new %s differ from the booted system's", strings.Join(s.RebootRequired, ", "))
	}
	if s.NotActivatable != "" {
		r.line("!!  cannot be activated live (%s): a switch only makes it the boot default, as --boot does; it runs after a reboot", s.NotActivatable)
	}
	if s.StopsAgent != "" {
		r.line("!!  %s: a switch is refused unless --force (nothing could confirm it or roll it back)", s.StopsAgent)
	}
}
