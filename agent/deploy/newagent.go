package deploy

// The new agent is inside the proof. A deployment that changes the agent's
// own unit (a new agent package, config file or arguments) is proven with
// the new agent, not with the one that ran the switch:
//
//   - before the switch (in the dry-activate phase) the new system's agent
//     binary checks its own configuration (check-config with the ExecStart
//     arguments of the new system's unit); a refusal fails the deployment
//     with nothing changed;
//   - after activation and health, the agent records in the journal that the
//     deployment awaits the new agent (journal.AgentHandover), opens the
//     window and asks systemd to restart its own unit; the new agent resumes
//     the record, and only an agent running the recorded ExecStart, other
//     than the one that handed over, accepts the confirmation. If no new
//     agent comes up, nothing can confirm and the deadline rolls back.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// AgentSelf is the agent seen from the engine: its own command line, the
// check of another agent binary's configuration and the restart of its
// unit. The agent implements it over os/exec and systemctl; tests fake it.
type AgentSelf interface {
	// Exec is the running agent's command line, nil when it does not run
	// as its unit (started by hand): such an agent never hands over.
	Exec() []string
	// CheckConfig runs exec's binary as `<binary> check-config <args>`,
	// where exec is `<binary> run <args>`; a refusal is an error whose text
	// is the binary's own one-line message.
	CheckConfig(ctx context.Context, exec []string) error
	// Restart asks the service manager to restart the agent's unit, as a
	// job that outlives this process.
	Restart(ctx context.Context) error
}

// Errors of the new agent.
var (
	// ErrNewAgentRefuses: the new system's agent refuses its configuration.
	ErrNewAgentRefuses = errors.New("the new system's agent refuses its configuration")
	// ErrNewAgentPending: a confirmation reached an agent other than the new
	// system's, which alone may confirm.
	ErrNewAgentPending = errors.New("the new agent has not started yet")
)

// checkTimeout bounds the new agent's check-config.
const checkTimeout = 30 * time.Second

// checkNewAgent runs the new system's agent's check-config with the config
// and arguments of its unit. A system without the unit passes: stopsAgent
// judges that.
func (d *deployment) checkNewAgent(ctx context.Context, toplevel string) error {
	a := d.e.agent
	if a == nil {
		return nil
	}
	unit := d.e.opts.AgentUnit
	exec, _, err := agentUnit(toplevel, unit)
	if err != nil {
		return fmt.Errorf("%w: reading its unit %s: %v", ErrNewAgentRefuses, unit, err)
	}
	if exec == nil {
		return nil
	}
	if len(exec) < 2 || exec[1] != "run" {
		d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("the new system's %s does not run `panther-agent run` (ExecStart=%s): its configuration is not checked", unit, strings.Join(exec, " "))})
		return nil
	}
	d.logf(PhaseDryActivate, "checking the new agent's configuration: %s check-config %s", exec[0], strings.Join(exec[2:], " "))
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := a.CheckConfig(cctx, exec); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w (%s check-config): %v; nothing was changed", ErrNewAgentRefuses, exec[0], err)
	}
	return nil
}

// handOver hands the deployment over to the new system's agent when the
// switch changed the agent's unit: it records the expected agent and the
// window (the record is awaiting confirmation), arms the dead-man, asks
// systemd to restart the agent's unit and ends this agent's event stream
// (the controller reattaches to the new agent). It reports whether it took
// over the rest of the deployment; false leaves opening the window to the
// caller.
func (d *deployment) handOver(ctx context.Context) bool {
	e := d.e
	rec := d.rec
	exec, ok := d.newAgentNeeded()
	if !ok {
		return false
	}
	rec.NewAgent = &journal.AgentHandover{ExecStart: exec, HandedOverBy: e.instance, Requested: e.now()}
	if err := e.j.Update(rec); err != nil {
		d.rollback(ctx, "could not record the hand-over to the new agent: "+err.Error())
		return true
	}
	d.logf(PhaseConfirm, "the switch changed %s: restarting into the new agent (%s); only it accepts the confirmation, before %s",
		e.opts.AgentUnit, strings.Join(exec, " "), rec.Deadline.UTC().Format(time.RFC3339))
	if err := e.agent.Restart(ctx); err != nil {
		if ctx.Err() != nil {
			return true // agent stopping: the new agent resumes the record
		}
		d.rollback(ctx, "could not restart into the new system's agent: "+err.Error())
		return true
	}
	// Should this agent outlive the restart, the deadline still rolls back:
	// it never accepts the confirmation itself.
	e.armTimer(rec)
	e.log.Info("handed the deployment over to the new agent", "deployment", rec.ID, "exec", exec)
	d.r.handedOver()
	return true
}

// newAgentNeeded returns the new system's agent command line and whether
// the deployment must be handed over to it: the agent runs as its unit, the
// new system has the unit, and it differs from the previous system's or
// runs another command line than this agent's. An agent resumed after the
// switch started that already runs that command line is the new agent.
func (d *deployment) newAgentNeeded() ([]string, bool) {
	e := d.e
	rec := d.rec
	if e.agent == nil || rec.SwitchMode == "boot" {
		return nil, false
	}
	self := e.agent.Exec()
	if self == nil {
		return nil, false
	}
	exec, text, err := agentUnit(rec.NewPath, e.opts.AgentUnit)
	if err != nil || exec == nil {
		return nil, false
	}
	same := slices.Equal(self, exec)
	if same && d.resumed {
		return nil, false
	}
	_, prevText, _ := agentUnit(rec.PreviousPath, e.opts.AgentUnit)
	if same && prevText == text {
		return nil, false
	}
	return exec, true
}

// refuseOldAgent refuses a confirmation of a deployment handed over to the
// new agent unless this agent is it. Called with e.mu held.
func (e *Engine) refuseOldAgent(rec *journal.Record) error {
	h := rec.NewAgent
	if h == nil {
		return nil
	}
	if h.HandedOverBy == e.instance {
		return fmt.Errorf("%w: this agent handed %s over to the new system's agent (%s) and does not accept its confirmation", ErrNewAgentPending, rec.ID, strings.Join(h.ExecStart, " "))
	}
	var self []string
	if e.agent != nil {
		self = e.agent.Exec()
	}
	if !slices.Equal(self, h.ExecStart) {
		return fmt.Errorf("%w: %s awaits the agent `%s`; this one runs `%s`", ErrNewAgentPending, rec.ID, strings.Join(h.ExecStart, " "), strings.Join(self, " "))
	}
	return nil
}

// newAgentResumed notes in the record and the log that this agent resumed a
// deployment handed over to the new agent, and whether it is that agent.
func (d *deployment) newAgentResumed() {
	e := d.e
	rec := d.rec
	h := rec.NewAgent
	if h == nil || h.HandedOverBy == e.instance {
		return
	}
	e.mu.Lock()
	err := e.refuseOldAgent(rec)
	e.mu.Unlock()
	if err != nil {
		d.emit(Event{Kind: EventWarning, Line: err.Error() + "; it will not confirm, the deadline rolls back"})
		return
	}
	if h.ResumedBy == "" {
		h.ResumedBy = e.instance
		if err := e.j.Update(rec); err != nil {
			e.log.Warn("journal update", "deployment", rec.ID, "error", err)
		}
	}
	d.logf(PhaseConfirm, "the new agent (pid %d) resumed the deployment: it accepts the confirmation", os.Getpid())
}

// restartIntoCurrentAgent restarts the agent's unit after a deployment that
// was handed over to the new agent ended rolled back: the system's agent is
// the previous one again. Nothing is pending then, so the restart is safe.
func (d *deployment) restartIntoCurrentAgent() {
	e := d.e
	rec := d.rec
	if rec.NewAgent == nil || e.agent == nil || rec.State != journal.StateRolledBack {
		return
	}
	self := e.agent.Exec()
	exec, _, err := agentUnit(e.currentSystem(), e.opts.AgentUnit)
	if self == nil || err != nil || exec == nil || slices.Equal(self, exec) {
		return
	}
	e.log.Info("the rollback restored the previous agent's unit: restarting into it", "deployment", rec.ID, "exec", exec)
	ctx, cancel := context.WithTimeout(context.Background(), clearTimeout)
	defer cancel()
	if err := e.agent.Restart(ctx); err != nil {
		e.log.Error("restarting into the previous agent", "error", err)
	}
}

// handedOver ends the run's stream without a result: its watchers reattach
// and find the new agent.
func (r *run) handedOver() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	close(r.notify)
	r.notify = make(chan struct{})
}

// agentUnit reads unit in toplevel's etc/systemd/system, with its drop-ins,
// and returns its ExecStart split into words and its text. Both are nil and
// "" when toplevel has no such unit.
func agentUnit(toplevel, unit string) ([]string, string, error) {
	if toplevel == "" {
		return nil, "", nil
	}
	dir := filepath.Join(toplevel, "etc/systemd/system")
	b, err := os.ReadFile(filepath.Join(dir, unit))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	texts := []string{string(b)}
	dropins, _ := filepath.Glob(filepath.Join(dir, unit+".d", "*.conf"))
	slices.Sort(dropins)
	for _, f := range dropins {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		texts = append(texts, string(b))
	}
	var exec string
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			l = strings.TrimSpace(l)
			if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
				exec = v // an empty one resets the list
			}
		}
	}
	words, err := splitExec(exec)
	if err != nil {
		return nil, "", fmt.Errorf("%s: ExecStart: %w", unit, err)
	}
	if len(words) == 0 {
		return nil, "", fmt.Errorf("%s has no ExecStart", unit)
	}
	return words, strings.Join(texts, "\n"), nil
}

// splitExec splits a systemd ExecStart value into words: its special
// prefixes (@-:+!) are dropped, words are separated by blanks and may be
// quoted with ' or ", and a backslash escapes the next character.
func splitExec(s string) ([]string, error) {
	s = strings.TrimLeft(strings.TrimSpace(s), "@-:+!")
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	esc := false
	for _, c := range s {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case c == '\\':
			esc, in = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
