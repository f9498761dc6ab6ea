package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/termsafe"
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// followed is what a deployment's event stream told us.
type followed struct {
	summary  *agentv1.Summary
	awaiting *agentv1.AwaitingConfirmation
	approval *agentv1.AwaitingApproval // follow stops there (approve.go)
	result   *agentv1.Result
	started  map[agentv1.Phase]bool
}

// reporter prints events for people (or as JSON lines) and writes them all
// to the controller-side log file.
type reporter struct {
	c     *CLI
	host  string
	mu    sync.Mutex
	logw  io.Writer
	start time.Time
	// On a terminal: the live display and this host's line in it.
	live *live
	hl   *hostLine
	// seen is the time of the newest event shown. A stream reattached with
	// Watch replays the deployment from its start; what was shown already
	// is not shown again.
	seen time.Time
	// switchEnd holds "switch done" until the switch has ended (switchend.go).
	switchEnd switchEnd
	// pending lines are in the log file but shown only once the agent
	// accepted the request (pending.go).
	pending []string
	// onHealth, if set, runs when the agent starts its health checks
	// (finishSwitch starts the confirm node then).
	onHealth func()
	// unreached is set when a switched host could not be reached from a
	// new tailnet node and rolled back: why the confirm failed.
	unreached string
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
	if r.c.g.json {
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

func (r *reporter) event(ev *agentv1.DeployEvent) {
	if r.c.g.json {
		b, _ := protojson.Marshal(ev)
		r.mu.Lock()
		fmt.Fprintf(r.c.io.Stdout, `{"host":%q,"event":%s}`+"\n", r.host, b)
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
	switch e := ev.Event.(type) {
	case *agentv1.DeployEvent_PhaseStarted:
		if r.hl != nil {
			r.hl.setPhase(phaseName(e.PhaseStarted.Phase))
		}
		r.line("==> %s", phaseName(e.PhaseStarted.Phase))
	case *agentv1.DeployEvent_PhaseFinished:
		f := e.PhaseFinished
		if f.Ok {
			r.line("    %s done in %s", phaseName(f.Phase), f.Elapsed.AsDuration())
		} else {
			r.line("!!  %s FAILED after %s: %s", phaseName(f.Phase), f.Elapsed.AsDuration(), f.Error)
		}
	case *agentv1.DeployEvent_Log:
		r.emit(true, "    │ "+e.Log.Line)
	case *agentv1.DeployEvent_Warning:
		r.line("warning: %s", e.Warning.Message)
	case *agentv1.DeployEvent_Health:
		v := "ok"
		if !e.Health.Ok {
			v = "FAILED"
		}
		r.line("    health %s: %s %s", e.Health.Name, v, e.Health.Detail)
	case *agentv1.DeployEvent_Summary:
		s := e.Summary
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
	case *agentv1.DeployEvent_AwaitingConfirmation:
		a := e.AwaitingConfirmation
		if a.NewGeneration == 0 {
			// Test, then boot: the generation is made by the confirm.
			r.line("==> switched to generation (made by the confirm; the boot default stays on the previous system until then); confirming before %s", a.Deadline.AsTime().Local().Format(time.TimeOnly))
			break
		}
		r.line("==> switched to generation %d; confirming before %s", a.NewGeneration, a.Deadline.AsTime().Local().Format(time.TimeOnly))
	case *agentv1.DeployEvent_AwaitingApproval:
		r.line("    awaiting approval until %s (nothing changes before it)", e.AwaitingApproval.Deadline.AsTime().Local().Format(time.TimeOnly))
	case *agentv1.DeployEvent_Result:
		res := e.Result
		msg := outcomeName(res.Outcome)
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
		if len(res.RebootRequired) > 0 && res.Outcome != agentv1.Outcome_OUTCOME_REBOOT_REQUIRED &&
			res.Outcome != agentv1.Outcome_OUTCOME_ROLLED_BACK {
			r.line("    reboot required: the new %s take effect at the next boot", strings.Join(res.RebootRequired, ", "))
		}
	}
}

// summaryFacts shows what the summary says besides units: what dry-activate
// would also do, what needs a reboot, and what a switch cannot do.
func (r *reporter) summaryFacts(s *agentv1.Summary) {
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

// follow reads a stream until the deployment awaits confirmation or ends.
// A broken stream returns the events so far and the error.
func (r *reporter) follow(st client.Stream, f *followed) error {
	for {
		ev, err := st.Recv()
		if err == io.EOF {
			if f.result != nil || f.awaiting != nil {
				return nil
			}
			return status.Error(codes.Unavailable, "the agent closed the stream before the deployment ended")
		}
		if err != nil {
			return err
		}
		if r.fresh(ev) {
			r.event(ev)
		}
		switch e := ev.Event.(type) {
		case *agentv1.DeployEvent_PhaseStarted:
			if e.PhaseStarted.Phase == agentv1.Phase_PHASE_HEALTH && r.onHealth != nil {
				r.onHealth()
			}
		case *agentv1.DeployEvent_Summary:
			f.summary = e.Summary
		case *agentv1.DeployEvent_AwaitingConfirmation:
			f.awaiting = e.AwaitingConfirmation
		case *agentv1.DeployEvent_Result:
			f.result = e.Result
		case *agentv1.DeployEvent_AwaitingApproval:
			f.approval = e.AwaitingApproval
			return nil // the stream stays open: the caller approves, then follows it on
		}
	}
}

// fresh reports whether ev is newer than every event shown so far (events
// without a time always are), and if so remembers it as the newest.
func (r *reporter) fresh(ev *agentv1.DeployEvent) bool {
	if ev.GetTime() == nil {
		return true
	}
	t := ev.GetTime().AsTime()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !t.After(r.seen) {
		return false
	}
	r.seen = t
	return true
}

// retriable reports whether a broken stream is worth reattaching to: the
// agent may be restarting (by its own switch) or the network blinking.
func retriable(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return !errors.Is(err, context.Canceled)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// confirmOpts say how finishSwitch ends a switch.
type confirmOpts struct {
	window    time.Duration // the confirmation window asked for (bounds the reattach loop)
	noConfirm bool          // do not confirm: wait for the dead-man's rollback
	detach    bool          // with noConfirm: return once the window is open
}

// finishSwitch follows a switch to its end: it reattaches with Watch while
// the agent is unreachable, confirms from a brand-new tailnet node once the
// agent awaits confirmation (reach.go), and returns the final result. A
// confirm that never got through, followed by the agent's rollback, is
// recorded in r.unreached.
func (c *CLI) finishSwitch(ctx context.Context, n *network, r *reporter, s client.Signer, host, id string, st client.Stream, o confirmOpts) (*agentv1.Result, error) {
	var fresh *freshNode
	if !o.noConfirm {
		fresh = c.newFreshNode()
		defer fresh.close()
		// The agent checks health only once the switch has ended: a node
		// registered from now on cannot have reached the host before a cut.
		r.onHealth = fresh.start
		defer func() { r.onHealth = nil }()
	}
	f := &followed{}
	err := r.follow(st, f)
	giveUp := time.Now().Add(o.window + 2*time.Minute)
	for err != nil && f.result == nil && f.awaiting == nil {
		if !retriable(err) || time.Now().After(giveUp) {
			return nil, rpcError(host, err)
		}
		r.line("lost the stream (%v); reattaching…", shortErr(err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		err = c.watchOnce(ctx, n, r, host, id, f)
	}
	if f.result != nil {
		return f.result, nil
	}
	deadline := f.awaiting.Deadline.AsTime()
	if o.noConfirm {
		if o.detach {
			r.line("not confirming (--no-confirm --detach): the agent rolls back at %s; follow it with: pantherctl logs %s %s --follow", deadline.Local().Format(time.TimeOnly), host, id)
			return &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_AWAITING_CONFIRMATION}, nil
		}
		r.line("not confirming (--no-confirm): the agent rolls back at %s; waiting for it (--detach returns now)", deadline.Local().Format(time.TimeOnly))
		return c.waitOutcome(ctx, n, r, host, id, time.Until(deadline)+2*time.Minute, nil)
	}
	dialer, how := tailnet.Dialer(n.dialer), "the machine's tailscaled (--via system)"
	if fresh == nil {
		r.line("note: confirming over the machine's tailscaled (--via system), a node %s knows already: this does not prove that a new node can reach it", host)
	} else {
		// A node that cannot join within half the window leaves the other
		// half to confirm from pantherctl's own node.
		wctx, cancel := context.WithTimeout(ctx, time.Until(deadline)/2)
		node, up, err := fresh.wait(wctx)
		cancel()
		if err != nil {
			// Not the host's fault: confirm as before, and say what is not proven.
			r.line("warning: could not start a new tailnet node to confirm from (%v); confirming over pantherctl's own node, which does not prove that a new node can reach %s", shortErr(err), host)
			how = "pantherctl's own tailnet node"
		} else {
			dialer, how = node, "a new tailnet node"
			r.emit(true, fmt.Sprintf("    confirm node joined the tailnet in %s", up.Round(time.Millisecond)))
		}
	}
	// A new node, unknown to the host until control told it: proof that
	// the new system still reaches control and lets a newcomer in.
	var last error
	for {
		t0 := time.Now()
		res, err := func() (*agentv1.Result, error) {
			conn, err := client.Dial(ctx, dialer, host, c.g.port)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			return conn.Confirm(cctx, s, id)
		}()
		if err == nil {
			r.line("result: %s (confirmed from %s in %s)", outcomeName(res.Outcome), how, time.Since(t0).Round(time.Millisecond))
			return res, nil
		}
		last = err
		if !(retriable(err) || client.IsControlDown(err)) || time.Now().After(deadline) {
			r.line("confirmation failed: %s", shortErr(err))
			break
		}
		r.line("confirm did not get through (%s); retrying", shortErr(err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	res, err := c.waitOutcome(ctx, n, r, host, id, 3*time.Minute, last)
	if res.GetOutcome() == agentv1.Outcome_OUTCOME_ROLLED_BACK && (retriable(last) || client.IsControlDown(last)) {
		// The window ran out with the host out of a new node's reach.
		r.unreached = shortErr(last)
	}
	return res, err
}

// waitOutcome waits, for at most max, for the agent's own verdict (after a
// failed confirm, or none): it watches the deployment over pantherctl's own
// node, which may still reach the host when a new node cannot. cause is
// what to report when no verdict comes; nil reports the wait itself.
func (c *CLI) waitOutcome(ctx context.Context, n *network, r *reporter, host, id string, max time.Duration, cause error) (*agentv1.Result, error) {
	deadline := time.Now().Add(max)
	var err error
	for time.Now().Before(deadline) {
		f := &followed{}
		err = c.watchOnce(ctx, n, r, host, id, f)
		if f.result != nil {
			return f.result, nil
		}
		if err != nil && !retriable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if cause == nil {
		cause = err
	}
	if cause == nil {
		cause = fmt.Errorf("no result within %s", max.Round(time.Second))
	}
	return nil, rpcError(host, cause)
}

// watchOnce reattaches to deployment id over a new connection and follows
// it until it awaits confirmation, ends, or the stream breaks.
func (c *CLI) watchOnce(ctx context.Context, n *network, r *reporter, host, id string, f *followed) error {
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return err
	}
	defer conn.Close()
	w, err := conn.Watch(ctx, id)
	if err != nil {
		return err
	}
	return r.follow(w, f)
}

func shortErr(err error) string {
	if st, ok := status.FromError(err); ok {
		return humanRPC(st.Message())
	}
	return err.Error()
}

// exitFor maps a final result to pantherctl's exit code.
func exitFor(res *agentv1.Result) int {
	switch res.GetOutcome() {
	case agentv1.Outcome_OUTCOME_CONFIRMED, agentv1.Outcome_OUTCOME_BUILT, agentv1.Outcome_OUTCOME_DRY_ACTIVATED,
		agentv1.Outcome_OUTCOME_BOOT_SCHEDULED, agentv1.Outcome_OUTCOME_AWAITING_CONFIRMATION:
		return ExitOK
	case agentv1.Outcome_OUTCOME_ROLLED_BACK:
		return ExitRolledBack
	case agentv1.Outcome_OUTCOME_MANUAL_INTERVENTION:
		return ExitManual
	case agentv1.Outcome_OUTCOME_REBOOT_REQUIRED:
		return ExitRebootRequired
	}
	return ExitFailed
}
