package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/defaults"
)

// Options configure an Engine. Zero values take the defaults given.
type Options struct {
	Host           string        // this host's name; required
	Profile        string        // system profile; default /nix/var/nix/profiles/system
	CurrentSystem  string        // link to the running system; default /run/current-system
	RuntimeDir     string        // tmpfs dir cleared by a reboot; default /run/panther-agent
	DefaultConfirm time.Duration // confirmation window; default 60s
	MaxConfirm     time.Duration // longest window a request may ask for; default 15m
	Retention      int           // finished deployments kept; default 50
	PollInterval   time.Duration // how often a running switch's output is read; default 20ms
	UnitPrefix     string        // transient unit name prefix; default "panther-"
	BootedSystem   string        // link to the booted system; default /run/booted-system
	// SwitchLock is switch-to-configuration's lock file; default
	// /run/nixos/switch-to-configuration.lock.
	SwitchLock string
	// AgentUnit is the agent's own unit, which a deploy must not stop or
	// remove without Force; default panther-agent.service.
	AgentUnit string
	// GCRootDir holds the garbage collector roots of the deployments in
	// flight (<id>-new, <id>-previous); default /nix/var/nix/gcroots/panther.
	// nix treats every symlink under /nix/var/nix/gcroots as a root.
	GCRootDir string
	// SwitchTimeout is how long a switch-to-configuration unit (switch,
	// rollback, dry-activate) may run before systemd stops it; the
	// deployment then rolls back. Default 10m.
	SwitchTimeout time.Duration
	// FlakeHost is the only nixosConfigurations attribute the agent builds
	// and activates (the agent's flakeHost); default Host. A request for
	// any other attribute is refused before anything is built.
	FlakeHost string
}

func (o *Options) setDefaults() {
	if o.FlakeHost == "" {
		o.FlakeHost = o.Host
	}
	if o.Profile == "" {
		o.Profile = "/nix/var/nix/profiles/system"
	}
	if o.CurrentSystem == "" {
		o.CurrentSystem = "/run/current-system"
	}
	if o.RuntimeDir == "" {
		o.RuntimeDir = "/run/panther-agent"
	}
	if o.DefaultConfirm == 0 {
		o.DefaultConfirm = defaults.ConfirmTimeout
	}
	if o.MaxConfirm == 0 {
		o.MaxConfirm = defaults.MaxConfirmTimeout
	}
	if o.Retention == 0 {
		o.Retention = 50
	}
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	if o.UnitPrefix == "" {
		o.UnitPrefix = "panther-"
	}
	if o.BootedSystem == "" {
		o.BootedSystem = "/run/booted-system"
	}
	if o.SwitchLock == "" {
		o.SwitchLock = "/run/nixos/switch-to-configuration.lock"
	}
	if o.AgentUnit == "" {
		o.AgentUnit = "panther-agent.service"
	}
	if o.GCRootDir == "" {
		o.GCRootDir = "/nix/var/nix/gcroots/panther"
	}
	if o.SwitchTimeout == 0 {
		o.SwitchTimeout = DefaultSwitchTimeout
	}
}

// DefaultSwitchTimeout is the default Options.SwitchTimeout: generous, as a
// switch that restarts many services can take minutes, yet bounded so that a
// switch waiting forever cannot keep the dead-man from rolling back.
const DefaultSwitchTimeout = defaults.SwitchTimeout

// Deps are the engine's collaborators.
type Deps struct {
	Nix       Nix
	Activator Activator
	Health    Health
	Journal   *journal.Journal
	Log       hclog.Logger
	Now       func() time.Time // default time.Now
	// OnConfirmed, if set, runs (in its own goroutine) after a deployment is
	// confirmed. (The agent no longer restarts into a new version of itself
	// here: Agent hands the deployment over before the window opens.)
	OnConfirmed func(id string)
	// Agent, if set, lets the engine check the new system's agent before
	// the switch and hand a deployment that changes the agent's unit over
	// to the new agent (see newagent.go). Nil: neither happens.
	Agent AgentSelf

	// OnResult, if set, is called once with every deployment's final result
	// (not with a synthesized result of Watch). It runs on the engine's
	// goroutine and must return quickly: metrics and result hooks queue
	// their work.
	OnResult func(Final)

	// Host, if set, tells whether the host is shutting down before the
	// engine judges anything destructive (shutdown.go). Default: never.
	Host Host

	// Cache, if set, substitutes a system a build peer of the same rollout
	// has or builds instead of building it again (cache.go). Nil: every
	// host builds by itself.
	Cache FleetCache
}

// Engine runs deployments, one at a time.
type Engine struct {
	opts   Options
	nix    Nix
	act    Activator
	health Health
	j      *journal.Journal
	log    hclog.Logger
	now    func() time.Time
	onConf func(id string)
	agent  AgentSelf // Deps.Agent
	// instance is a random token of this engine: the record of a
	// deployment handed over to the new agent names the one that did.
	instance string

	onResult func(Final) // Deps.OnResult
	host     Host        // Deps.Host, nil: never shutting down
	cache    FleetCache  // Deps.Cache, nil: no fleet cache

	ctx    context.Context // owns every background goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	bootToken string

	mu     sync.Mutex
	active string // deployment holding the lock, "" if none
	runs   map[string]*run
	timers map[string]*time.Timer
	// approvals are the deployments awaiting approval (approve.go).
	approvals map[string]*approval
}

// New builds an engine. Call Start to resume unfinished deployments.
func New(opts Options, deps Deps) (*Engine, error) {
	opts.setDefaults()
	if opts.Host == "" {
		return nil, errors.New("deploy: host name is required")
	}
	if deps.Nix == nil || deps.Activator == nil || deps.Health == nil || deps.Journal == nil {
		return nil, errors.New("deploy: nix, activator, health and journal are required")
	}
	if deps.Log == nil {
		deps.Log = hclog.NewNullLogger()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		opts: opts, nix: deps.Nix, act: deps.Activator, health: deps.Health, j: deps.Journal,
		log: deps.Log.Named("deploy"), now: deps.Now, onConf: deps.OnConfirmed,
		ctx: ctx, cancel: cancel, onResult: deps.OnResult, host: deps.Host, cache: deps.Cache,
		runs: map[string]*run{}, timers: map[string]*time.Timer{}, approvals: map[string]*approval{},
		agent: deps.Agent, instance: randomHex(8),
	}, nil
}

// Close stops the engine's goroutines and timers. Unfinished deployments stay
// in the journal; the next Start resumes them (the dead-man keeps its deadline).
func (e *Engine) Close() {
	e.cancel()
	e.mu.Lock()
	for _, t := range e.timers {
		t.Stop()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// Start reads the boot token and resumes every unfinished deployment: a
// switch that was running is awaited, a confirmation window is re-armed, and
// a deployment left unconfirmed by a reboot is rolled back.
func (e *Engine) Start() error {
	tok, err := e.readBootToken()
	if err != nil {
		return err
	}
	e.bootToken = tok
	e.sweepRoots()
	recs, err := e.j.Unfinished()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		e.resume(rec)
	}
	e.retryBoot()
	return nil
}

func (e *Engine) readBootToken() (string, error) {
	path := filepath.Join(e.opts.RuntimeDir, "boot-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(e.opts.RuntimeDir, 0o700); err != nil {
		return "", fmt.Errorf("runtime dir: %w", err)
	}
	tok := randomHex(16)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("boot token: %w", err)
	}
	return tok, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Subscription reads a deployment's events.
type Subscription struct {
	r *run
	i int
}

// Next blocks until there are new events, returning them and whether the
// deployment's result has been sent.
func (s *Subscription) Next(ctx context.Context) ([]Event, bool, error) {
	for {
		evs, done, more := s.r.next(s.i)
		if len(evs) > 0 || done {
			s.i += len(evs)
			return evs, done && s.i >= s.r.len(), nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

func (r *run) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.history)
}

// Watch subscribes to a deployment's events from its start (as far as kept
// in memory). A finished deployment not in memory yields just its result.
func (e *Engine) Watch(id string) (*Subscription, error) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil {
		return &Subscription{r: r}, nil
	}
	rec, err := e.j.Get(id)
	if err != nil {
		return nil, err
	}
	r = newRun(id)
	r.append(Event{Time: e.now(), DeploymentID: id, Kind: EventResult, Result: e.resultOf(rec)})
	return &Subscription{r: r}, nil
}

// Submit validates req, takes the deployment lock and starts the pipeline.
// Phases before the switch stop when ctx ends (the controller went away:
// nothing has changed yet); from the switch on, the engine owns the
// deployment and finishes it whatever happens to the caller.
func (e *Engine) Submit(ctx context.Context, req Request) (*Subscription, error) {
	if err := e.validate(&req); err != nil {
		return nil, err
	}
	rec := &journal.Record{
		ID: req.ID, Action: string(req.Action), Host: e.opts.Host, FlakeAttr: req.FlakeAttr,
		SourceDigest: req.SourceDigest, RequestedBy: req.RequestedBy, KeyID: req.KeyID,
		State: journal.StateRunning, ConfirmTimeout: req.ConfirmTimeout,
		CriticalUnits: req.ExtraCritical, InstallBootloader: req.InstallBootloader,
		AwaitApproval: req.AwaitApproval,
		BootToken:     e.bootToken, // tells a power cut before the switch from an agent restart
	}
	req.Source.record(rec)
	e.mu.Lock()
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if e.active != "" {
		id := e.active
		e.mu.Unlock()
		return nil, &BusyError{ID: id}
	}
	if err := e.j.Create(rec); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	e.active = rec.ID
	r := newRun(rec.ID)
	e.runs[rec.ID] = r
	e.mu.Unlock()

	pre, stopPre := context.WithCancel(e.ctx)
	stopLink := context.AfterFunc(ctx, stopPre)
	d := e.newDeployment(rec, r)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer stopPre()
		d.pipeline(pre, stopLink, req)
	}()
	return &Subscription{r: r}, nil
}

func (e *Engine) validate(req *Request) error {
	if !journal.ValidID(req.ID) {
		return fmt.Errorf("%w: deployment id %q (letters, digits, . _ - only)", ErrInvalidRequest, req.ID)
	}
	switch req.Action {
	case ActionBuild, ActionDryActivate, ActionSwitch, ActionBoot:
		if req.FlakeRef == "" || req.FlakeAttr == "" {
			return fmt.Errorf("%w: flake source and attribute are required", ErrInvalidRequest)
		}
		if !validAttr(req.FlakeAttr) {
			return fmt.Errorf("%w: %q is not a valid flake attribute name", ErrInvalidRequest, req.FlakeAttr)
		}
		// The agent serves only its own configuration: a wrong tailnetName
		// in the controller's inventory must not switch this host to
		// another host's system.
		if req.FlakeAttr != e.opts.FlakeHost {
			return &WrongFlakeHostError{Requested: req.FlakeAttr, Configured: e.opts.FlakeHost}
		}
	case ActionRollback:
		if req.Generation < 0 {
			return fmt.Errorf("%w: generation %d", ErrInvalidRequest, req.Generation)
		}
		// A rollback names a generation of this host's profile, never a
		// configuration; a request carrying one is not ours.
		if req.FlakeRef != "" || req.FlakeAttr != "" {
			return fmt.Errorf("%w: a rollback takes a generation, not a flake source or attribute", ErrInvalidRequest)
		}
	default:
		return fmt.Errorf("%w: unknown action %q", ErrInvalidRequest, req.Action)
	}
	if req.AwaitApproval {
		if req.Action != ActionSwitch && req.Action != ActionBoot {
			return fmt.Errorf("%w: only a switch or boot awaits approval, not %s", ErrInvalidRequest, req.Action)
		}
		if req.ApprovalTimeout <= 0 || req.ApprovalTimeout > e.opts.MaxConfirm {
			return fmt.Errorf("%w: approval timeout %v (must be > 0 and at most %v)", ErrInvalidRequest, req.ApprovalTimeout, e.opts.MaxConfirm)
		}
	}
	if req.ConfirmTimeout < 0 {
		return fmt.Errorf("%w: negative confirm timeout", ErrInvalidRequest)
	}
	if req.ConfirmTimeout == 0 {
		req.ConfirmTimeout = e.opts.DefaultConfirm
	}
	if req.ConfirmTimeout > e.opts.MaxConfirm {
		return fmt.Errorf("%w: %v > %v", ErrTimeoutTooLong, req.ConfirmTimeout, e.opts.MaxConfirm)
	}
	for _, u := range req.ExtraCritical {
		if u == "" || strings.ContainsAny(u, "/ \n") {
			return fmt.Errorf("%w: critical unit name %q", ErrInvalidRequest, u)
		}
	}
	return validateFleetCache(req) // cache.go
}

// validAttr accepts what a nixosConfigurations attribute can safely be
// without quoting in an installable.
func validAttr(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9' && i > 0)
		if !ok {
			return false
		}
	}
	return true
}

// Confirm keeps the switched deployment id.
func (e *Engine) Confirm(id, by string) (*Result, error) {
	e.mu.Lock()
	rec, err := e.j.Get(id)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if rec.State != journal.StateAwaiting {
		e.mu.Unlock()
		if rec.State == journal.StateConfirmed {
			return nil, fmt.Errorf("%w: %s is already confirmed", ErrNotPending, id)
		}
		return nil, fmt.Errorf("%w: %s is %s", ErrNotPending, id, rec.State)
	}
	if err := e.refuseOldAgent(rec); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if !e.now().Before(rec.Deadline) {
		e.mu.Unlock()
		e.expire(id) // the timer may be a hair late; do not let a late confirm win
		return nil, fmt.Errorf("%w: %s expired at %s", ErrDeadlinePassed, id, rec.Deadline.UTC().Format(time.RFC3339))
	}
	// The independent dead-man's timer stops first; a rollback it started
	// already wins (testboot.go).
	if started, err := e.confirmHold(rec); err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("could not stop the independent dead-man %s.timer, so the confirm cannot be kept: %w", rec.DeadmanUnit, err)
	} else if started {
		rec.State = journal.StateRollingBack
		rec.Reason = "the independent dead-man's rollback started before the confirm"
		e.j.Update(rec)
		if t := e.timers[id]; t != nil {
			t.Stop()
			delete(e.timers, id)
		}
		e.mu.Unlock()
		e.followDeadman(rec)
		return nil, fmt.Errorf("%w: the independent dead-man of %s is rolling back already", ErrDeadlinePassed, id)
	}
	rec.State = journal.StateConfirmed
	rec.Reason = "confirmed by " + by
	rec.BootPending = rec.ProfileDeferred
	if err := e.j.Update(rec); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if t := e.timers[id]; t != nil {
		t.Stop()
		delete(e.timers, id)
	}
	r := e.runs[id]
	e.mu.Unlock()
	d := e.newDeployment(rec, r)
	if r == nil {
		d = e.newDeployment(rec, newRun(id))
	}
	d.clearDeadman(e.ctx)
	if rec.BootPending {
		d.bootConfirmed(e.ctx)
		rec.Reason += bootPendingNote(rec)
		if err := e.j.Update(rec); err != nil {
			e.log.Error("journal update", "deployment", id, "error", err)
		}
	} else {
		e.dropRoots(id)
	}
	e.mu.Lock()
	e.releaseLocked(id)
	e.mu.Unlock()

	res := e.resultOf(rec)
	ev := Event{Time: e.now(), DeploymentID: id, Kind: EventResult, Result: res}
	// The log ends with the result line, as for every other outcome.
	e.appendLog(rec.ID, fmt.Sprintf("[confirm] confirmed by %s", by))
	e.appendLog(rec.ID, formatEvent(ev))
	if r != nil {
		r.append(ev)
	}
	e.log.Info("deployment confirmed", "deployment", id, "by", by, "path", rec.NewPath)
	e.observeFinal(rec, res)
	e.prune()
	if e.onConf != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.onConf(id)
		}()
	}
	return res, nil
}

func (e *Engine) releaseLocked(id string) {
	if e.active == id {
		e.active = ""
	}
	// keep finished runs briefly for late watchers; drop older ones
	if len(e.runs) > 8 {
		for rid, r := range e.runs {
			if rid != e.active {
				r.mu.Lock()
				done := r.done
				r.mu.Unlock()
				if done && rid != id {
					delete(e.runs, rid)
				}
			}
		}
	}
}

func (e *Engine) prune() {
	if err := e.j.Prune(e.opts.Retention); err != nil {
		e.log.Warn("pruning old deployments", "error", err)
	}
}

func (e *Engine) appendLog(id, line string) {
	f, err := e.j.OpenLog(id)
	if err != nil {
		e.log.Error("deployment log", "deployment", id, "error", err)
		return
	}
	fmt.Fprintf(f, "%s %s\n", e.now().UTC().Format(time.RFC3339Nano), line)
	f.Close()
}

// armTimer schedules the dead-man for rec.
func (e *Engine) armTimer(rec *journal.Record) {
	d := rec.Deadline.Sub(e.now())
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.timers[rec.ID]; old != nil {
		old.Stop()
	}
	id := rec.ID
	e.timers[id] = time.AfterFunc(d, func() { e.expire(id) })
}

// expire rolls back id if it is still awaiting confirmation.
func (e *Engine) expire(id string) {
	e.mu.Lock()
	delete(e.timers, id)
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		return
	}
	rec, err := e.j.Get(id)
	if err != nil || rec.State != journal.StateAwaiting {
		e.mu.Unlock()
		return
	}
	rec.State = journal.StateRollingBack
	rec.Reason = fmt.Sprintf("not confirmed within %v (deadline %s)", rec.ConfirmTimeout, rec.Deadline.UTC().Format(time.RFC3339))
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update before rollback", "deployment", id, "error", err)
	}
	r := e.runs[id]
	if r == nil {
		r = newRun(id)
		e.runs[id] = r
	}
	e.mu.Unlock()
	e.log.Warn("confirmation deadline passed: rolling back", "deployment", id, "previous", rec.PreviousPath)
	d := e.newDeployment(rec, r)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		d.rollback(e.ctx, rec.Reason)
	}()
}

// resume continues an unfinished record after an agent start.
func (e *Engine) resume(rec *journal.Record) {
	e.mu.Lock()
	e.active = rec.ID
	r := newRun(rec.ID)
	e.runs[rec.ID] = r
	e.mu.Unlock()
	d := e.newDeployment(rec, r)
	d.resumed = true
	rebooted := rec.BootToken != "" && rec.BootToken != e.bootToken
	e.log.Info("resuming deployment", "deployment", rec.ID, "state", rec.State, "rebooted", rebooted)
	d.logf(PhaseConfirm, "agent started: resuming deployment in state %s", rec.State)

	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if d.resumeAfterShutdown(e.ctx, rebooted) {
			return
		}
		switch rec.State {
		case journal.StateRunning:
			d.clearUnit(e.ctx, e.dryActivateUnit(rec.ID)) // left by a dry-activate cut short
			d.clearUnit(e.ctx, e.checkUnit(rec.ID))       // or by its switch inhibitors' check
			if rec.Phase == string(PhaseApprove) {
				d.approvalInterrupted(rebooted)
				return
			}
			if rebooted {
				// A power cut: nothing told the agent (a clean reboot is
				// decided in resumeAfterShutdown).
				d.fail(rec.Phase, fmt.Sprintf("the host rebooted during %s; nothing was changed", rec.Phase))
				return
			}
			d.fail(rec.Phase, "the agent stopped before the switch; nothing was changed")
		case journal.StateSwitching:
			if rebooted {
				d.rollback(e.ctx, "the host rebooted during the switch")
				return
			}
			d.afterSwitchStarted(e.ctx) // the baseline is in the record
		case journal.StateAwaiting:
			switch {
			case rebooted:
				d.rollback(e.ctx, "the host rebooted before the deployment was confirmed")
			case !e.now().Before(rec.Deadline):
				d.rollback(e.ctx, fmt.Sprintf("not confirmed within %v (deadline passed while the agent was down)", rec.ConfirmTimeout))
			case d.deadmanStarted(e.ctx):
			default:
				d.newAgentResumed()
				d.emit(Event{Kind: EventAwaiting, Awaiting: &Awaiting{Deadline: rec.Deadline, NewPath: rec.NewPath, NewGeneration: rec.NewGeneration}})
				e.armTimer(rec)
			}
		case journal.StateRollingBack:
			d.rollback(e.ctx, rec.Reason)
		}
	}()
}

func (e *Engine) resultOf(rec *journal.Record) *Result {
	res := &Result{
		Outcome: rec.State, Message: rec.Reason, StorePath: rec.NewPath, Generation: rec.NewGeneration,
		RecoveryCommands: rec.RecoveryCommands, LogPath: e.j.LogPath(rec.ID),
	}
	if rec.SwitchExitCode != nil {
		res.SwitchExitCode = *rec.SwitchExitCode
	}
	res.PreviouslyFailed = rec.PreviouslyFailed
	if rec.State != journal.StateRolledBack {
		res.RebootRequired = rec.RebootRequired
	}
	if rec.State == journal.StateFailed || rec.State == journal.StateManual || rec.State == journal.StateRolledBack {
		res.FailedPhase = Phase(rec.Phase)
	}
	if rec.State == journal.StateRolledBack {
		res.StorePath = rec.PreviousPath
		res.Generation = rec.RollbackGeneration
		if res.Generation == 0 && rec.ProfileDeferred {
			// test-then-boot: the profile never left the previous generation.
			res.Generation = rec.PreviousGeneration
		}
	}
	return res
}

// currentSystem reads the running system's store path ("" if none).
func (e *Engine) currentSystem() string {
	p, err := filepath.EvalSymlinks(e.opts.CurrentSystem)
	if err != nil {
		return ""
	}
	return p
}

// unitCheckEvery is how often systemd is asked about a running switch's
// unit once it has run for a while.
const unitCheckEvery = 500 * time.Millisecond

// currentGenNumber is the profile's current generation (0 if none).
func (e *Engine) currentGenNumber(ctx context.Context) int64 {
	if gr, ok := e.nix.(generationReader); ok {
		if n, err := gr.CurrentGeneration(ctx, e.opts.Profile); err == nil {
			return n
		}
	}
	n, _ := e.currentGeneration(ctx)
	return n
}

func (e *Engine) currentGeneration(ctx context.Context) (int64, []Generation) {
	gens, err := e.nix.Generations(ctx, e.opts.Profile)
	if err != nil {
		return 0, nil
	}
	for _, g := range gens {
		if g.Current {
			return g.Number, gens
		}
	}
	return 0, gens
}

func genNumbers(gens []Generation) []string {
	var s []string
	for _, g := range gens {
		s = append(s, fmt.Sprint(g.Number))
	}
	slices.Reverse(s)
	return s
}
