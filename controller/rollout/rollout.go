package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/internal/defaults"
)

// Mode is what a rollout does to its hosts.
type Mode string

// Modes of a rollout.
const (
	ModeSwitch Mode = "switch"  // switch, check health, confirm
	ModeBoot   Mode = "boot"    // make the new system the boot default
	ModeDryRun Mode = "dry-run" // build and dry-activate only
	ModeBuild  Mode = "build"   // build only
)

// Options configure a Rollout. The zero value switches every host at once
// without asking, one at a time.
type Options struct {
	// Mode is what to do; default ModeSwitch.
	Mode Mode
	// Approver, if set, is asked once every host dry-activated whether to
	// switch (or set the boot default); default nil: no question (--yes).
	Approver Approver
	// HoldForApproval: with an Approver, each host's switch is one
	// deployment that the agent holds after its dry activation until it is
	// approved or declined (at most ApprovalTimeout; 0 = the agent's
	// default); default false: a dry-activate deployment, then a second
	// one that switches exactly the dry-activated system.
	HoldForApproval bool
	ApprovalTimeout time.Duration
	// NoConfirm: do not confirm; wait for the agent's rollback (Detach:
	// return as soon as the confirmation window is open).
	NoConfirm, Detach bool
	// Carried in every intent.
	FailOnWarnings, InstallBootloader, Force bool
	// CriticalUnits must be active after the switch, on every host.
	CriticalUnits []string
	// ConfirmTimeout is the confirmation window; default 0: each host's,
	// else the agent's.
	ConfirmTimeout time.Duration
	// Jobs is how many hosts run at once; default (0 or less) 1.
	Jobs int
	// KeepGoing: start the step's remaining hosts even after more than
	// MaxUnhealthy failed; default false.
	KeepGoing bool
	// Canary hosts switch first, as a wave of their own that halts the
	// rollout on any failure; default 0 (no canary).
	Canary int
	// Waves split the hosts after the canary; default: one wave.
	Waves Waves
	// RolloutID and BuildPeers (the tailnet names of the build peers, in
	// rollout order) let the hosts build each closure once and substitute
	// it from each other; PushTo is a store the builder copies the closure
	// to. Default: none (every host builds by itself).
	RolloutID  string
	BuildPeers []string
	PushTo     string
	// NewID returns a deployment id; default NewDeploymentID.
	NewID func() string
	// Sleep waits d or until ctx ends; default a timer. Tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Retry is the wait between reattach and confirm attempts; default 1s.
	Retry time.Duration
}

// Rollout takes hosts from plan to result through an Agent.
type Rollout struct {
	agent Agent
	src   Source
	obs   Observer
	o     Options
	log   hclog.Logger
}

// New returns a rollout over agent, bringing src to each host first (nil:
// no source, e.g. a rollback), reporting to obs (nil: nobody).
func New(agent Agent, src Source, obs Observer, o Options, log hclog.Logger) *Rollout {
	if o.Mode == "" {
		o.Mode = ModeSwitch
	}
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	if o.NewID == nil {
		o.NewID = func() string { return NewDeploymentID(time.Now()) }
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if obs == nil {
		obs = NopObserver{}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Rollout{agent: agent, src: src, obs: obs, o: o, log: log.Named("rollout")}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewDeploymentID returns a sortable, unique deployment id.
func NewDeploymentID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Report is how a rollout ended.
type Report struct {
	// Hosts in the order given.
	Hosts []*HostReport
	// Declined: the operator did not approve; nothing was switched.
	Declined bool
	// Halt, if set, is the wave that stopped the rollout.
	Halt *Halt
}

// Halt says why a rollout stopped before its last wave.
type Halt struct {
	Wave      int
	Canary    bool
	Unhealthy []string // the wave's hosts that did not succeed
	Max       int      // how many it could have had
}

// HostReport is one host's part of a rollout.
type HostReport struct {
	Host         Host
	DeploymentID string // the last deployment started on the host
	Summary      *Summary
	Result       *Result
	Err          error
	// Skipped: never started (or not switched); Why says why.
	Skipped bool
	Why     string
	// Wave the host switched in (0: before the waves, or none).
	Wave     int
	Duration time.Duration
	// Unreached is set when the host rolled back because no confirm got
	// through to it after the switch: the last confirm error.
	Unreached string

	source *SourceRef
	// held is the stream of a deployment the agent holds for approval.
	held    *heldDeployment
	started time.Time
	// seen is the time of the newest event passed on. A stream reattached
	// with Watch replays the deployment from its start: what was passed on
	// already is not passed on again.
	seen time.Time
	log  hclog.Logger
}

// Verdict classifies how a host's part ended; the CLI maps it to an exit
// code.
type Verdict int

// Verdicts, from best to worst.
const (
	VerdictOK             Verdict = iota // confirmed, built, dry-activated, boot default set
	VerdictRebootRequired                // switched to the boot default only
	VerdictError                         // an error around the deployment (connection, …)
	VerdictRefused                       // the agent refused the request
	VerdictFailed                        // failed before anything changed, or skipped
	VerdictRolledBack                    // switched, then rolled back
	VerdictManual                        // the rollback failed too
)

// Verdict is how the host's part ended.
func (h *HostReport) Verdict() Verdict {
	switch {
	case h.Skipped:
		return VerdictFailed
	case h.Err != nil:
		if errors.Is(h.Err, ErrUntrusted) || errors.Is(h.Err, ErrRefused) {
			return VerdictRefused
		}
		return VerdictError
	case h.Result == nil && h.held != nil:
		return VerdictOK // dry-activated, awaiting approval
	case h.Result == nil:
		return VerdictError
	}
	return OutcomeVerdict(h.Result.Outcome)
}

// OutcomeVerdict is the verdict a final outcome stands for.
func OutcomeVerdict(o Outcome) Verdict {
	switch o {
	case OutcomeConfirmed, OutcomeBuilt, OutcomeDryActivated, OutcomeBootScheduled, OutcomeAwaitingConfirmation:
		return VerdictOK
	case OutcomeRolledBack:
		return VerdictRolledBack
	case OutcomeManualIntervention:
		return VerdictManual
	case OutcomeRebootRequired:
		return VerdictRebootRequired
	}
	return VerdictFailed // failed, not approved, unknown
}

// AwaitingApproval reports whether the agent holds the host's deployment
// after its dry activation for the approval.
func (h *HostReport) AwaitingApproval() bool { return h.held != nil && h.Result == nil && h.Err == nil }

// OK reports whether the host's part succeeded.
func (h *HostReport) OK() bool { return h.Verdict() == VerdictOK }

func (h *HostReport) done() bool { return h.Skipped || h.Err != nil || h.Result != nil }

// Run rolls hosts out and reports how each ended. It returns an error
// only when the approval could not be asked; everything about hosts is
// in the report.
func (r *Rollout) Run(ctx context.Context, hosts []Host) (*Report, error) {
	rep := &Report{}
	for _, h := range hosts {
		rep.Hosts = append(rep.Hosts, &HostReport{Host: h, log: r.log.With("host", h.Name)})
	}
	switching := r.o.Mode == ModeSwitch || r.o.Mode == ModeBoot
	if switching && r.o.Approver != nil {
		// One question for the whole batch, after every host dry-activated.
		r.step(ctx, Step{Kind: StepPrepare}, rep.Hosts, r.prepare, true, 0)
		var ready, failed []*HostReport
		for _, hr := range rep.Hosts {
			if hr.Err == nil && (hr.held != nil || hr.Result != nil && hr.Result.Outcome == OutcomeDryActivated) {
				ready = append(ready, hr)
			} else {
				failed = append(failed, hr)
			}
		}
		if len(ready) == 0 {
			return rep, nil
		}
		ok, err := r.o.Approver.Approve(ready, failed)
		if err != nil || !ok {
			r.declineAll(ctx, ready)
			rep.Declined = err == nil
			return rep, err
		}
		for _, hr := range rep.Hosts {
			switch {
			case hr.Result != nil && hr.Result.Outcome == OutcomeDryActivated:
				hr.Result = nil // to be switched
			case hr.Err == nil && hr.Result == nil && hr.held == nil:
				hr.Skipped = true
			}
		}
	}
	waves := r.o.Waves.split(rep.Hosts, r.o.Canary)
	for i, w := range waves {
		if i > 0 && r.o.Waves.Pause > 0 {
			for _, hr := range w {
				hr.log.Debug("pausing before the wave", "wave", i+1, "pause", r.o.Waves.Pause)
			}
			if err := r.o.Sleep(ctx, r.o.Waves.Pause); err != nil {
				skip(waves[i:], "not started: "+err.Error())
				break
			}
		}
		canary := r.o.Canary > 0 && i == 0
		max := r.o.Waves.MaxUnhealthy
		if canary {
			max = 0
		}
		for _, hr := range w {
			if !hr.done() {
				hr.Wave = i + 1
			}
		}
		s := Step{Kind: StepApply, Wave: i + 1, Canary: canary, Hosts: names(w)}
		r.step(ctx, s, w, r.apply, r.o.KeepGoing, max)
		var bad []string
		for _, hr := range w {
			if !hr.OK() {
				bad = append(bad, hr.Host.Name)
			}
		}
		if len(bad) > max && i < len(waves)-1 {
			rep.Halt = &Halt{Wave: i + 1, Canary: canary, Unhealthy: bad, Max: max}
			why := fmt.Sprintf("wave %d had %d unhealthy host(s) (%s), more than --max-unhealthy %d", i+1, len(bad), joinNames(bad), max)
			if canary {
				why = "canary " + bad[0] + " was not confirmed"
			}
			skip(waves[i+1:], why)
			break
		}
	}
	// Deployments still held (their wave never came) end unchanged.
	r.declineAll(ctx, rep.Hosts)
	return rep, nil
}

func skip(waves [][]*HostReport, why string) {
	for _, w := range waves {
		for _, hr := range w {
			if !hr.done() {
				hr.Skipped, hr.Why = true, why
			}
		}
	}
}

func names(hrs []*HostReport) []string {
	var s []string
	for _, hr := range hrs {
		s = append(s, hr.Host.Name)
	}
	return s
}

func joinNames(s []string) string {
	out := ""
	for i, n := range s {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// declineAll ends the deployments that await approval (nothing changed).
func (r *Rollout) declineAll(ctx context.Context, hrs []*HostReport) {
	for _, hr := range hrs {
		if hr.held == nil {
			continue
		}
		res, err := r.agent.Decline(ctx, hr.Host, hr.DeploymentID)
		if err != nil {
			// Nothing changed either way: past its deadline the agent
			// ends it by itself.
			hr.log.Warn("could not decline", "error", err)
			continue
		}
		hr.Result, hr.held = res, nil
	}
}

// step runs f for every host of hrs that has no end yet, at most Jobs at
// once; once more than max failed, no new host starts unless keepGoing.
func (r *Rollout) step(ctx context.Context, s Step, hrs []*HostReport, f func(context.Context, *HostReport), keepGoing bool, max int) {
	if s.Hosts == nil {
		s.Hosts = names(hrs)
	}
	r.obs.StepStarted(s)
	sem := make(chan struct{}, r.o.Jobs)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for _, hr := range hrs {
		if hr.done() {
			continue
		}
		sem <- struct{}{}
		mu.Lock()
		stop := failed > max && !keepGoing
		mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			hr.Skipped, hr.Why = true, "not started after an earlier failure (use --keep-going)"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hr.started = time.Now()
			f(ctx, hr)
			hr.Duration += time.Since(hr.started)
			if !hr.OK() {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.obs.StepFinished(s, hrs)
}

// source brings the source to the host once.
func (r *Rollout) source(ctx context.Context, hr *HostReport) bool {
	if hr.source != nil || r.src == nil {
		if hr.source == nil {
			hr.source = &SourceRef{}
		}
		return true
	}
	ref, err := r.src.Prepare(ctx, hr.Host, func(n Note) { r.obs.Note(hr.Host.Name, n) })
	if err != nil {
		hr.Err, hr.Why = err, "upload"
		return false
	}
	hr.source = &ref
	return true
}

// intent is the request for one deployment on hr's host.
func (r *Rollout) intent(hr *HostReport, a Action, expected string) Intent {
	in := Intent{
		Action: a, DeploymentID: r.o.NewID(), Source: *hr.source, FlakeAttr: hr.Host.Name,
		ExpectedStorePath: expected, ConfirmTimeout: r.window(hr.Host),
		FailOnWarnings: r.o.FailOnWarnings, InstallBootloader: r.o.InstallBootloader, Force: r.o.Force,
		CriticalUnits: append(append([]string{}, hr.Host.CriticalUnits...), r.o.CriticalUnits...),
		RolloutID:     r.o.RolloutID, BuildPeers: r.o.BuildPeers, PushTo: r.o.PushTo,
	}
	hr.DeploymentID = in.DeploymentID
	hr.log = r.log.With("host", hr.Host.Name, "deployment", in.DeploymentID)
	return in
}

// window is the confirmation window asked for; 0 leaves it to the agent.
func (r *Rollout) window(h Host) time.Duration {
	if r.o.ConfirmTimeout > 0 {
		return r.o.ConfirmTimeout
	}
	return h.ConfirmTimeout
}

// prepare brings the source and dry-activates (the step before the
// approval): with HoldForApproval as a switch the agent holds after its
// dry activation, else as a deployment of its own.
func (r *Rollout) prepare(ctx context.Context, hr *HostReport) {
	if !r.source(ctx, hr) {
		return
	}
	if !r.o.HoldForApproval {
		r.run(ctx, hr, r.intent(hr, ActionDryActivate, ""))
		return
	}
	in := r.intent(hr, r.switchAction(), "")
	in.AwaitApproval, in.ApprovalTimeout = true, r.o.ApprovalTimeout
	hr.log.Info("deploying, to be held for approval", "action", in.Action)
	ev, err := r.agent.Deploy(ctx, hr.Host, in)
	if err != nil {
		hr.Err = err
		return
	}
	f := &followed{stopAtApproval: true}
	if err := r.follow(hr, ev, f, nil); err != nil {
		hr.Err = err
		return
	}
	hr.Summary = f.summary
	if f.approval != nil && f.result == nil {
		hr.held = &heldDeployment{id: in.DeploymentID, events: ev, approval: f.approval}
		return
	}
	hr.Result = f.result
}

// heldDeployment is a deployment the agent holds for approval.
type heldDeployment struct {
	id       string
	events   Events
	approval *AwaitingApproval
}

func (r *Rollout) switchAction() Action {
	if r.o.Mode == ModeBoot {
		return ActionBoot
	}
	return ActionSwitch
}

// approveHeld approves the host's held deployment with the store path it
// dry-activated and returns its stream, which goes on to the switch. When
// the agent no longer holds it (its approval window passed), ok is false
// and the caller deploys exactly that store path anew.
func (r *Rollout) approveHeld(ctx context.Context, hr *HostReport) (id string, ev Events, ok bool) {
	h := hr.held
	hr.held = nil
	r.note(hr, false, "==> approving %s", h.approval.NewStorePath)
	err := r.agent.Approve(ctx, hr.Host, h.id, h.approval.NewStorePath)
	if err == nil {
		return h.id, h.events, true
	}
	if errors.Is(err, ErrPrecondition) {
		r.note(hr, false, "the agent no longer holds deployment %s (%s); deploying %s anew", h.id, ShortError(err), h.approval.NewStorePath)
		if hr.Summary == nil {
			hr.Summary = &Summary{}
		}
		hr.Summary.NewStorePath = h.approval.NewStorePath
		return "", nil, false
	}
	hr.Err = err
	return "", nil, false
}

// run sends one deploy request and follows it to its result.
func (r *Rollout) run(ctx context.Context, hr *HostReport, in Intent) {
	hr.log.Info("deploying", "action", in.Action)
	ev, err := r.agent.Deploy(ctx, hr.Host, in)
	if err != nil {
		hr.Err = err
		return
	}
	f := &followed{}
	if err := r.follow(hr, ev, f, nil); err != nil {
		hr.Err = err
		return
	}
	hr.Summary, hr.Result = f.summary, f.result
}

// apply runs the mode on one host; after prepare it switches exactly the
// dry-activated store path.
func (r *Rollout) apply(ctx context.Context, hr *HostReport) {
	if !r.source(ctx, hr) {
		return
	}
	switch r.o.Mode {
	case ModeBuild:
		r.run(ctx, hr, r.intent(hr, ActionBuild, ""))
		return
	case ModeDryRun:
		r.run(ctx, hr, r.intent(hr, ActionDryActivate, ""))
		return
	}
	var (
		id string
		ev Events
	)
	if hr.held != nil {
		var ok bool
		if id, ev, ok = r.approveHeld(ctx, hr); !ok && hr.Err != nil {
			return
		}
	}
	if ev == nil {
		expected := ""
		if hr.Summary != nil {
			expected = hr.Summary.NewStorePath
		}
		in := r.intent(hr, r.switchAction(), expected)
		hr.log.Info("deploying", "action", in.Action, "expected", expected)
		var err error
		if ev, err = r.agent.Deploy(ctx, hr.Host, in); err != nil {
			hr.Err = err
			return
		}
		id = in.DeploymentID
	}
	if r.o.Mode == ModeBoot {
		f := &followed{}
		if err := r.follow(hr, ev, f, nil); err != nil {
			hr.Err = err
			return
		}
		hr.Result = f.result
		return
	}
	hr.Result, hr.Err = r.finishSwitch(ctx, hr, id, ev, r.window(hr.Host))
}

// Rollback switches host back to generation gen (0: the previous good
// one), confirms it like a switch and reports how it ended.
func (r *Rollout) Rollback(ctx context.Context, host Host, gen int64) *HostReport {
	hr := &HostReport{Host: host, source: &SourceRef{}, log: r.log.With("host", host.Name)}
	s := Step{Kind: StepRollback, Hosts: []string{host.Name}}
	r.obs.StepStarted(s)
	defer r.obs.StepFinished(s, []*HostReport{hr})
	hr.started = time.Now()
	defer func() { hr.Duration = time.Since(hr.started) }()
	in := r.intent(hr, ActionRollback, "")
	in.Generation = gen
	ev, err := r.agent.Rollback(ctx, host, in)
	if err != nil {
		hr.Err = err
		return hr
	}
	hr.Result, hr.Err = r.finishSwitch(ctx, hr, in.DeploymentID, ev, in.ConfirmTimeout)
	return hr
}

// followed is what a deployment's event stream told so far.
type followed struct {
	summary  *Summary
	awaiting *Awaiting
	approval *AwaitingApproval
	result   *Result
	// stopAtApproval: return once the deployment awaits approval (its
	// stream stays open: the rest follows the approval).
	stopAtApproval bool
}

// follow reads events until the deployment awaits confirmation or ends;
// a broken stream returns its error (the events so far are kept in f).
// Events a reattached stream replays are not passed on twice.
func (r *Rollout) follow(hr *HostReport, ev Events, f *followed, onHealth func()) error {
	for {
		e, err := ev.Next()
		if err == io.EOF {
			if f.result != nil || f.awaiting != nil {
				return nil
			}
			return &AgentError{Host: hr.Host.Name, Kind: ErrInterrupted, Message: "the agent closed the stream before the deployment ended"}
		}
		if err != nil {
			return err
		}
		if e.Time.IsZero() || e.Time.After(hr.seen) {
			if !e.Time.IsZero() {
				hr.seen = e.Time
			}
			r.obs.Event(hr.Host.Name, e)
		}
		switch e.Kind {
		case EventPhaseStarted:
			if e.Phase == PhaseHealth && onHealth != nil {
				onHealth()
			}
		case EventSummary:
			f.summary = e.Summary
		case EventAwaiting:
			f.awaiting = e.Awaiting
		case EventResult:
			f.result = e.Result
		case EventAwaitingApproval:
			f.approval = e.Approval
			if f.stopAtApproval {
				return nil
			}
		}
	}
}

func (r *Rollout) note(hr *HostReport, quiet bool, format string, args ...any) {
	r.obs.Note(hr.Host.Name, Note{Text: fmt.Sprintf(format, args...), Quiet: quiet})
}

// finishSwitch follows a switch to its end: it reattaches with Watch while
// the agent is unreachable, confirms over the agent's confirm route once
// the deployment awaits confirmation, and returns the final result.
func (r *Rollout) finishSwitch(ctx context.Context, hr *HostReport, id string, ev Events, window time.Duration) (*Result, error) {
	var route ConfirmRoute
	openRoute := func() {
		if route == nil {
			route = r.agent.ConfirmRoute(hr.Host, id)
		}
	}
	defer func() {
		if route != nil {
			route.Close()
		}
	}()
	var onHealth func()
	if !r.o.NoConfirm {
		// The agent checks health only once the switch has ended: a route
		// opened from now on cannot have reached the host before a cut.
		onHealth = openRoute
	}
	f := &followed{}
	err := r.follow(hr, ev, f, onHealth)
	if window <= 0 {
		// Not known before the agent says: the longest it may grant.
		window = defaults.MaxConfirmTimeout
	}
	giveUp := time.Now().Add(window + 2*time.Minute)
	for err != nil && f.result == nil && f.awaiting == nil {
		if !Retriable(err) || time.Now().After(giveUp) {
			return nil, err
		}
		r.note(hr, false, "lost the stream (%v); reattaching…", ShortError(err))
		if err := r.o.Sleep(ctx, r.o.Retry); err != nil {
			return nil, err
		}
		err = r.watchOnce(ctx, hr, id, f, onHealth)
	}
	if f.result != nil {
		return f.result, nil
	}
	deadline := f.awaiting.Deadline
	if r.o.NoConfirm {
		if r.o.Detach {
			r.note(hr, false, "not confirming (--no-confirm --detach): the agent rolls back at %s; follow it with: pantherctl logs %s %s --follow", deadline.Local().Format(time.TimeOnly), hr.Host.Name, id)
			return &Result{Outcome: OutcomeAwaitingConfirmation}, nil
		}
		r.note(hr, false, "not confirming (--no-confirm): the agent rolls back at %s; waiting for it (--detach returns now)", deadline.Local().Format(time.TimeOnly))
		return r.waitOutcome(ctx, hr, id, time.Until(deadline)+2*time.Minute, nil)
	}
	openRoute()
	// A route that cannot come up within half the window leaves the other
	// half to confirm another way.
	wctx, cancel := context.WithTimeout(ctx, time.Until(deadline)/2)
	info := route.Ready(wctx)
	cancel()
	for _, n := range info.Notes {
		r.obs.Note(hr.Host.Name, n)
	}
	var last error
	for {
		t0 := time.Now()
		cctx, cancel := context.WithTimeout(ctx, defaults.ConfirmCallTimeout)
		res, err := route.Confirm(cctx)
		cancel()
		if err == nil {
			r.note(hr, false, "result: %s (confirmed from %s in %s)", res.Outcome, info.Via, time.Since(t0).Round(time.Millisecond))
			return &res, nil
		}
		last = err
		if !(Retriable(err) || errors.Is(err, ErrControlDown)) || time.Now().After(deadline) {
			r.note(hr, false, "confirmation failed: %s", ShortError(err))
			break
		}
		r.note(hr, false, "confirm did not get through (%s); retrying", ShortError(err))
		if err := r.o.Sleep(ctx, r.o.Retry); err != nil {
			return nil, err
		}
	}
	res, err := r.waitOutcome(ctx, hr, id, 3*time.Minute, last)
	if res != nil && res.Outcome == OutcomeRolledBack && (Retriable(last) || errors.Is(last, ErrControlDown)) {
		// The window ran out with the host out of the route's reach.
		hr.Unreached = ShortError(last)
	}
	return res, err
}

// waitOutcome waits, for at most max, for the agent's own verdict (after a
// failed confirm, or none) by watching the deployment. cause is what to
// report when no verdict comes; nil reports the wait itself.
func (r *Rollout) waitOutcome(ctx context.Context, hr *HostReport, id string, max time.Duration, cause error) (*Result, error) {
	deadline := time.Now().Add(max)
	var err error
	for time.Now().Before(deadline) {
		f := &followed{}
		err = r.watchOnce(ctx, hr, id, f, nil)
		if f.result != nil {
			return f.result, nil
		}
		if err != nil && !Retriable(err) {
			break
		}
		if err := r.o.Sleep(ctx, r.o.Retry); err != nil {
			return nil, err
		}
	}
	if cause == nil {
		cause = err
	}
	if cause == nil {
		cause = &AgentError{Host: hr.Host.Name, Kind: ErrUnreachable, Message: fmt.Sprintf("no result within %s", max.Round(time.Second))}
	}
	return nil, cause
}

// watchOnce reattaches to deployment id and follows it until it awaits
// confirmation, ends, or the stream breaks.
func (r *Rollout) watchOnce(ctx context.Context, hr *HostReport, id string, f *followed, onHealth func()) error {
	ev, err := r.agent.Watch(ctx, hr.Host, id)
	if err != nil {
		return err
	}
	return r.follow(hr, ev, f, onHealth)
}

// ShortError is err in a few words: an agent error's message, else the
// error's text.
func ShortError(err error) string {
	var ae *AgentError
	if errors.As(err, &ae) && ae.Message != "" {
		return ae.Message
	}
	return err.Error()
}
