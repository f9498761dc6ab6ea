package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// One deployment per host (issue 13 item 2). A switch or boot requested
// with AwaitApproval runs validate, build and dry-activate as any other,
// sends its Summary, then waits in phase "approve" with the engine's lock
// held: a signed Approve naming the dry-activated store path lets the same
// deployment go on to the switch (no second evaluation, build or
// dry-activate: one journal record and one log); a Decline, the timeout or
// an agent restart end it "not-approved" with nothing changed.
//
// The wait is detached from the caller: a controller that dies while the
// agent waits leaves the deployment to its timeout, and Watch reattaches.
// An agent restart while waiting ends the deployment (resume): the
// dry-activate's summary was judged against a system the restart may have
// changed, so it is never approved after the fact.

// AwaitingApproval is sent when a deployment starts waiting for Approve.
type AwaitingApproval struct {
	Deadline time.Time
	NewPath  string // the dry-activated system: Approve must name it
}

// approval is a deployment waiting for its decision. Its fields are
// guarded by the engine's mu.
type approval struct {
	path    string
	decided bool
	// decision receives the one decision (buffered).
	decision chan approvalDecision
	// ended is closed once a declined deployment's result is recorded.
	ended chan struct{}
}

type approvalDecision struct {
	approve bool
	by      string
}

// awaitApproval waits for the decision on d's dry-activated system path
// and reports whether it was approved. Otherwise the deployment is
// finished (declined, timed out) or left to the next start (the agent is
// stopping; ctx is the engine's).
func (d *deployment) awaitApproval(ctx context.Context, path string, timeout time.Duration) bool {
	e, rec := d.e, d.rec
	a := &approval{path: path, decision: make(chan approvalDecision, 1), ended: make(chan struct{})}
	defer close(a.ended)
	rec.Phase = string(PhaseApprove)
	rec.ApprovalDeadline = e.now().Add(timeout)
	rec.NewPath = path
	if err := e.j.Update(rec); err != nil {
		d.fail(string(PhaseApprove), "could not record the wait for approval, nothing was changed: "+err.Error())
		return false
	}
	e.mu.Lock()
	e.approvals[rec.ID] = a
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.approvals, rec.ID)
		e.mu.Unlock()
	}()
	d.emit(Event{Kind: EventAwaitingApproval, Approval: &AwaitingApproval{Deadline: rec.ApprovalDeadline, NewPath: path}})
	t := time.NewTimer(timeout)
	defer t.Stop()
	var dec approvalDecision
	select {
	case dec = <-a.decision:
	case <-t.C:
		e.mu.Lock()
		late := a.decided // an Approve that won the race is kept
		a.decided = true
		e.mu.Unlock()
		if !late {
			d.finish(journal.StateNotApproved, fmt.Sprintf("not approved within %v; nothing was changed", timeout))
			return false
		}
		dec = <-a.decision
	case <-ctx.Done():
		// The agent is stopping: the record stays in phase approve and the
		// next start ends it (resume). An Approve racing this is lost.
		e.mu.Lock()
		a.decided = true
		e.mu.Unlock()
		return false
	}
	if !dec.approve {
		d.finish(journal.StateNotApproved, "declined by "+orNone(dec.by)+"; nothing was changed")
		return false
	}
	rec.ApprovedBy = dec.by
	d.logf(PhaseApprove, "approved by %s: switching to %s", orNone(dec.by), path)
	return true
}

// Approve lets deployment id, awaiting approval, go on to the switch.
// path must be the dry-activated store path (its AwaitingApproval's).
func (e *Engine) Approve(id, path, by string) error {
	return e.decide(id, path, approvalDecision{approve: true, by: by})
}

// Decline ends deployment id, awaiting approval, with nothing changed, and
// returns its final result.
func (e *Engine) Decline(id, by string) (*Result, error) {
	e.mu.Lock()
	a := e.approvals[id]
	e.mu.Unlock()
	if err := e.decide(id, "", approvalDecision{by: by}); err != nil {
		return nil, err
	}
	<-a.ended
	rec, err := e.j.Get(id)
	if err != nil {
		return nil, err
	}
	return e.resultOf(rec), nil
}

// decide hands the decision to the waiting deployment. path "" skips the
// path check (a decline).
func (e *Engine) decide(id, path string, dec approvalDecision) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.approvals[id]
	if a == nil || a.decided {
		rec, err := e.j.Get(id)
		if err != nil {
			return err // journal.ErrNotFound: no such deployment
		}
		why := string(rec.State)
		if rec.State == journal.StateRunning {
			why = "in phase " + rec.Phase
		}
		if rec.Reason != "" {
			why += ": " + rec.Reason
		}
		return fmt.Errorf("%w: %s is %s", ErrNotAwaitingApproval, id, why)
	}
	if dec.approve && path != a.path {
		return fmt.Errorf("%w: %s dry-activated %s, the approval names %q; the deployment still awaits approval",
			ErrApprovalPathMismatch, id, a.path, path)
	}
	a.decided = true
	a.decision <- dec
	return nil
}

// approvalInterrupted ends a deployment found in phase approve at the
// agent's start: nothing was changed, and the wait is not resumed.
func (d *deployment) approvalInterrupted(rebooted bool) {
	what := "the agent restarted"
	if rebooted {
		what = "the host rebooted"
	}
	d.finish(journal.StateNotApproved, what+" while the deployment awaited approval; nothing was changed (deploy again)")
}

// awaitsApproval reports whether r is a deployment waiting for Approve:
// still running, in phase approve, with a deadline.
func awaitsApproval(r *journal.Record) bool {
	return r.State == journal.StateRunning && r.Phase == string(PhaseApprove) && !r.ApprovalDeadline.IsZero()
}
