package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/rollout"
)

// behaviour is what a fake host does.
type behaviour int

const (
	good            behaviour = iota
	failBuild                 // the build fails: nothing changes
	refuse                    // the agent refuses every request
	dropStream                // the stream breaks once the switch starts; Watch finds it awaiting
	controlDown               // the first confirm is refused with ErrControlDown, then it goes through
	neverConfirms             // every confirm fails as unreachable; the agent rolls back
	approvalExpired           // the agent no longer holds a deployment when it is approved
)

// fakeAgent is an in-memory fleet: every host follows its behaviour.
type fakeAgent struct {
	mu       sync.Mutex
	order    *[]string // if set, ConfirmRoute calls are logged here
	hosts    map[string]behaviour
	calls    []string // "host action", in order
	deps     map[string][]rollout.Event
	confirms map[string]int
	running  int
	maxRun   int
	routes   int
	approved map[string]bool
}

func newFake(hosts map[string]behaviour) *fakeAgent {
	return &fakeAgent{hosts: hosts, deps: map[string][]rollout.Event{}, confirms: map[string]int{}, approved: map[string]bool{}}
}

type list struct {
	evs []rollout.Event
	err error // after the events
	end func()
	// more, if set, is called once the events ran out: the rest of a
	// deployment held for approval.
	more func() ([]rollout.Event, error)
}

func (l *list) Next() (rollout.Event, error) {
	if len(l.evs) == 0 && l.more != nil {
		more := l.more
		l.more = nil
		evs, err := more()
		if err != nil {
			return rollout.Event{}, err
		}
		l.evs = evs
	}
	if len(l.evs) == 0 {
		if l.end != nil {
			l.end()
			l.end = nil
		}
		if l.err != nil {
			return rollout.Event{}, l.err
		}
		return rollout.Event{}, io.EOF
	}
	e := l.evs[0]
	l.evs = l.evs[1:]
	return e, nil
}

var clock = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (f *fakeAgent) ev(id string, e rollout.Event) rollout.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	clock = clock.Add(time.Millisecond)
	e.Time, e.DeploymentID = clock, id
	f.deps[id] = append(f.deps[id], e)
	return e
}

func (f *fakeAgent) Deploy(ctx context.Context, h rollout.Host, in rollout.Intent) (rollout.Events, error) {
	f.mu.Lock()
	b := f.hosts[h.Name]
	call := h.Name + " " + string(in.Action)
	if in.AwaitApproval {
		call += " (held)"
	}
	if in.ExpectedStorePath != "" {
		call += " " + in.ExpectedStorePath
	}
	f.calls = append(f.calls, call)
	f.running++
	f.maxRun = max(f.maxRun, f.running)
	f.mu.Unlock()
	end := func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}
	if b == refuse {
		end()
		return nil, &rollout.AgentError{Host: h.Name, Kind: rollout.ErrRefused, Message: "busy"}
	}
	id := in.DeploymentID
	l := &list{end: end}
	l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseBuild}))
	if b == failBuild {
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeFailed, FailedPhase: rollout.PhaseBuild}}))
		return l, nil
	}
	switch in.Action {
	case rollout.ActionBuild:
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeBuilt}}))
	case rollout.ActionDryActivate:
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventSummary, Summary: &rollout.Summary{NewStorePath: "/nix/store/x-" + h.Name}}))
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeDryActivated}}))
	}
	if in.AwaitApproval {
		path := "/nix/store/x-" + h.Name
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventSummary, Summary: &rollout.Summary{NewStorePath: path}}))
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventAwaitingApproval, Approval: &rollout.AwaitingApproval{NewStorePath: path, Deadline: time.Now().Add(time.Minute)}}))
		l.more = func() ([]rollout.Event, error) {
			f.mu.Lock()
			ok := f.approved[id]
			f.mu.Unlock()
			if !ok {
				return nil, io.EOF
			}
			in.AwaitApproval = false
			rest, err := f.Deploy(ctx, h, in)
			if err != nil {
				return nil, err
			}
			f.mu.Lock()
			f.calls = f.calls[:len(f.calls)-1] // the same deployment, not a new one
			f.mu.Unlock()
			var evs []rollout.Event
			for {
				e, err := rest.Next()
				if err != nil {
					return evs, nil
				}
				if e.Kind != rollout.EventPhaseStarted || e.Phase != rollout.PhaseBuild {
					e.DeploymentID = id
					evs = append(evs, e)
				}
			}
		}
		return l, nil
	}
	switch in.Action {
	case rollout.ActionBoot:
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeBootScheduled}}))
	case rollout.ActionSwitch:
		l.evs = append(l.evs, f.ev(id, rollout.Event{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseSwitch}))
		if b == dropStream {
			l.err = &rollout.AgentError{Host: h.Name, Kind: rollout.ErrUnreachable, Message: "gone"}
		}
		f.ev(id, rollout.Event{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseHealth})
		f.ev(id, rollout.Event{Kind: rollout.EventAwaiting, Awaiting: &rollout.Awaiting{Deadline: time.Now().Add(time.Second), NewGeneration: 2}})
		if b != dropStream {
			f.mu.Lock()
			l.evs = append(l.evs, f.deps[id][len(f.deps[id])-2:]...)
			f.mu.Unlock()
		}
	}
	return l, nil
}

func (f *fakeAgent) Watch(ctx context.Context, h rollout.Host, id string) (rollout.Events, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h.Name+" watch")
	if f.hosts[h.Name] == neverConfirms && f.confirms[id] > 0 {
		f.deps[id] = append(f.deps[id], rollout.Event{Kind: rollout.EventResult, Time: clock.Add(time.Hour), Result: &rollout.Result{Outcome: rollout.OutcomeRolledBack, Message: "not confirmed"}})
	}
	return &list{evs: slices.Clone(f.deps[id])}, nil
}

func (f *fakeAgent) Rollback(ctx context.Context, h rollout.Host, in rollout.Intent) (rollout.Events, error) {
	in.Action = rollout.ActionSwitch
	return f.Deploy(ctx, h, in)
}

func (f *fakeAgent) ConfirmRoute(h rollout.Host, id string) rollout.ConfirmRoute {
	f.mu.Lock()
	f.routes++
	if f.order != nil {
		*f.order = append(*f.order, "OPEN CONFIRM ROUTE")
	}
	f.mu.Unlock()
	return &fakeRoute{f: f, host: h.Name, id: id}
}

func (f *fakeAgent) Approve(ctx context.Context, h rollout.Host, id, storePath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h.Name+" approve "+storePath)
	if f.hosts[h.Name] == approvalExpired {
		return &rollout.AgentError{Host: h.Name, Kind: rollout.ErrPrecondition, Message: "not awaiting approval"}
	}
	f.approved[id] = true
	return nil
}

func (f *fakeAgent) Decline(ctx context.Context, h rollout.Host, id string) (*rollout.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h.Name+" decline")
	return &rollout.Result{Outcome: rollout.OutcomeNotApproved}, nil
}

type fakeRoute struct {
	f        *fakeAgent
	host, id string
}

func (r *fakeRoute) Ready(ctx context.Context) rollout.RouteInfo {
	return rollout.RouteInfo{Via: "a fake"}
}

func (r *fakeRoute) Confirm(ctx context.Context) (rollout.Result, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.host+" confirm")
	f.confirms[r.id]++
	switch f.hosts[r.host] {
	case controlDown:
		if f.confirms[r.id] == 1 {
			return rollout.Result{}, &rollout.AgentError{Host: r.host, Kind: rollout.ErrControlDown, Message: "control down"}
		}
	case neverConfirms:
		return rollout.Result{}, &rollout.AgentError{Host: r.host, Kind: rollout.ErrUnreachable, Message: "no route"}
	}
	return rollout.Result{Outcome: rollout.OutcomeConfirmed, Generation: 2}, nil
}

func (r *fakeRoute) Close() {}

// recorder is an Observer that keeps notes and steps.
type recorder struct {
	mu    sync.Mutex
	notes []string
	steps []string
	evs   map[string]int
}

func (r *recorder) StepStarted(s rollout.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, fmt.Sprintf("%d/%d%s %s", s.Kind, s.Wave, map[bool]string{true: " canary"}[s.Canary], strings.Join(s.Hosts, ",")))
}
func (r *recorder) Event(host string, ev rollout.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.evs == nil {
		r.evs = map[string]int{}
	}
	r.evs[host]++
}
func (r *recorder) Note(host string, n rollout.Note) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, host+": "+n.Text)
}
func (r *recorder) StepFinished(rollout.Step, []*rollout.HostReport) {}

func hostsOf(names ...string) []rollout.Host {
	var hs []rollout.Host
	for _, n := range names {
		hs = append(hs, rollout.Host{Name: n})
	}
	return hs
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

// outcomes is "host: verdict word" for each host, for comparison.
func outcomes(rep *rollout.Report) map[string]string {
	out := map[string]string{}
	for _, hr := range rep.Hosts {
		switch {
		case hr.Skipped:
			out[hr.Host.Name] = "skipped: " + hr.Why
		case hr.Err != nil:
			out[hr.Host.Name] = "error: " + hr.Err.Error()
		default:
			out[hr.Host.Name] = hr.Result.Outcome.String()
		}
	}
	return out
}

func TestRollout(t *testing.T) {
	tests := []struct {
		name  string
		hosts map[string]behaviour
		order []string
		o     rollout.Options
		want  map[string]string
		halt  int // the halting wave, 0 for none
		calls []string
	}{
		{
			name:  "switch confirms every host",
			hosts: map[string]behaviour{"a": good, "b": good},
			order: []string{"a", "b"},
			want:  map[string]string{"a": "confirmed", "b": "confirmed"},
		},
		{
			name:  "build only",
			hosts: map[string]behaviour{"a": good},
			order: []string{"a"},
			o:     rollout.Options{Mode: rollout.ModeBuild},
			want:  map[string]string{"a": "built"},
			calls: []string{"a build"},
		},
		{
			name:  "boot sets the default without a confirm",
			hosts: map[string]behaviour{"a": good},
			order: []string{"a"},
			o:     rollout.Options{Mode: rollout.ModeBoot},
			want:  map[string]string{"a": "boot scheduled"},
			calls: []string{"a boot"},
		},
		{
			name:  "a failed canary halts the rest",
			hosts: map[string]behaviour{"a": failBuild, "b": good, "c": good},
			order: []string{"a", "b", "c"},
			o:     rollout.Options{Canary: 1, Waves: rollout.Waves{MaxUnhealthy: 5}},
			want:  map[string]string{"a": "failed", "b": "skipped: canary a was not confirmed", "c": "skipped: canary a was not confirmed"},
			halt:  1,
			calls: []string{"a switch"},
		},
		{
			name:  "a confirmed canary lets the rest go",
			hosts: map[string]behaviour{"a": good, "b": good},
			order: []string{"a", "b"},
			o:     rollout.Options{Canary: 1},
			want:  map[string]string{"a": "confirmed", "b": "confirmed"},
			calls: []string{"a switch", "a confirm", "b switch", "b confirm"},
		},
		{
			name:  "waves halt on the first wave over the limit",
			hosts: map[string]behaviour{"a": good, "b": failBuild, "c": good, "d": good, "e": good},
			order: []string{"a", "b", "c", "d", "e"},
			o:     rollout.Options{Waves: rollout.Waves{Size: 2}},
			want:  map[string]string{"a": "confirmed", "b": "failed", "c": "skipped: wave 1 had 1 unhealthy host(s) (b), more than --max-unhealthy 0", "d": "skipped: wave 1 had 1 unhealthy host(s) (b), more than --max-unhealthy 0", "e": "skipped: wave 1 had 1 unhealthy host(s) (b), more than --max-unhealthy 0"},
			halt:  1,
		},
		{
			name:  "a wave within --max-unhealthy goes on",
			hosts: map[string]behaviour{"a": good, "b": failBuild, "c": good, "d": failBuild, "e": failBuild},
			order: []string{"a", "b", "c", "d", "e"},
			o:     rollout.Options{Waves: rollout.Waves{Size: 2, MaxUnhealthy: 1}},
			want:  map[string]string{"a": "confirmed", "b": "failed", "c": "confirmed", "d": "failed", "e": "failed"},
		},
		{
			name:  "waves by share",
			hosts: map[string]behaviour{"a": good, "b": good, "c": failBuild, "d": good},
			order: []string{"a", "b", "c", "d"},
			o:     rollout.Options{Waves: rollout.Waves{Percent: 50}, Jobs: 4},
			want:  map[string]string{"a": "confirmed", "b": "confirmed", "c": "failed"},
		},
		{
			name:  "after a failure no new host starts",
			hosts: map[string]behaviour{"a": failBuild, "b": good},
			order: []string{"a", "b"},
			want:  map[string]string{"a": "failed", "b": "skipped: not started after an earlier failure (use --keep-going)"},
		},
		{
			name:  "keep going",
			hosts: map[string]behaviour{"a": failBuild, "b": good},
			order: []string{"a", "b"},
			o:     rollout.Options{KeepGoing: true},
			want:  map[string]string{"a": "failed", "b": "confirmed"},
		},
		{
			name:  "a refusal is a typed error",
			hosts: map[string]behaviour{"a": refuse},
			order: []string{"a"},
			want:  map[string]string{"a": "error: a: busy"},
		},
		{
			name:  "a broken stream is reattached with Watch",
			hosts: map[string]behaviour{"a": dropStream},
			order: []string{"a"},
			want:  map[string]string{"a": "confirmed"},
			calls: []string{"a switch", "a watch", "a confirm"},
		},
		{
			name:  "a confirm refused while control is down is retried",
			hosts: map[string]behaviour{"a": controlDown},
			order: []string{"a"},
			want:  map[string]string{"a": "confirmed"},
			calls: []string{"a switch", "a confirm", "a confirm"},
		},
		{
			name:  "no confirm gets through: the agent's rollback is the result",
			hosts: map[string]behaviour{"a": neverConfirms},
			order: []string{"a"},
			want:  map[string]string{"a": "rolled back"},
		},
		{
			name:  "no confirm with detach returns once the window is open",
			hosts: map[string]behaviour{"a": good},
			order: []string{"a"},
			o:     rollout.Options{NoConfirm: true, Detach: true},
			want:  map[string]string{"a": "awaiting confirmation"},
			calls: []string{"a switch"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fa := newFake(tc.hosts)
			tc.o.Sleep = noSleep
			rec := &recorder{}
			rep, err := rollout.New(fa, nil, rec, tc.o, nil).Run(context.Background(), hostsOf(tc.order...))
			if err != nil {
				t.Fatal(err)
			}
			got := outcomes(rep)
			for h, w := range tc.want {
				if got[h] != w {
					t.Errorf("%s: %q, want %q", h, got[h], w)
				}
			}
			if tc.halt != 0 && (rep.Halt == nil || rep.Halt.Wave != tc.halt) {
				t.Errorf("halt = %+v, want wave %d", rep.Halt, tc.halt)
			}
			if tc.halt == 0 && rep.Halt != nil {
				t.Errorf("halt = %+v, want none", rep.Halt)
			}
			if tc.calls != nil && !slices.Equal(fa.calls, tc.calls) {
				t.Errorf("calls = %q, want %q\nnotes: %q", fa.calls, tc.calls, rec.notes)
			}
		})
	}
}

func TestApprovalAsksOnceAfterEveryHostDryActivated(t *testing.T) {
	fa := newFake(map[string]behaviour{"a": good, "b": failBuild, "c": good})
	var asked [][]string
	o := rollout.Options{Sleep: noSleep, Jobs: 3, Approver: rollout.ApproverFunc(func(ready, failed []*rollout.HostReport) (bool, error) {
		var r []string
		for _, hr := range ready {
			if hr.Summary == nil {
				t.Errorf("%s is ready without a summary", hr.Host.Name)
			}
			r = append(r, hr.Host.Name)
		}
		asked = append(asked, r)
		return true, nil
	})}
	rep, err := rollout.New(fa, nil, nil, o, nil).Run(context.Background(), hostsOf("a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || !slices.Equal(asked[0], []string{"a", "c"}) {
		t.Errorf("asked %q, want once for a and c", asked)
	}
	got := outcomes(rep)
	if got["a"] != "confirmed" || got["c"] != "confirmed" || got["b"] != "failed" {
		t.Errorf("outcomes %v", got)
	}
	// The switch names exactly the dry-activated system.
	for _, c := range fa.calls {
		if c == "b switch" {
			t.Errorf("b switched after failing its dry activation: %q", fa.calls)
		}
	}
}

func TestDeclineChangesNothing(t *testing.T) {
	fa := newFake(map[string]behaviour{"a": good})
	o := rollout.Options{Sleep: noSleep, Approver: rollout.ApproverFunc(func(ready, failed []*rollout.HostReport) (bool, error) { return false, nil })}
	rep, err := rollout.New(fa, nil, nil, o, nil).Run(context.Background(), hostsOf("a"))
	if err != nil || !rep.Declined {
		t.Fatalf("Run = %+v, %v; want declined", rep, err)
	}
	if !slices.Equal(fa.calls, []string{"a dry-activate"}) {
		t.Errorf("calls %q, want only the dry activation", fa.calls)
	}
}

func TestWavesPauseBetweenWaves(t *testing.T) {
	fa := newFake(map[string]behaviour{"a": good, "b": good, "c": good})
	var pauses []time.Duration
	o := rollout.Options{Waves: rollout.Waves{Size: 1, Pause: time.Minute}, Sleep: func(ctx context.Context, d time.Duration) error {
		if d == time.Minute {
			pauses = append(pauses, d)
		}
		return nil
	}}
	rec := &recorder{}
	rep, _ := rollout.New(fa, nil, rec, o, nil).Run(context.Background(), hostsOf("a", "b", "c"))
	if len(pauses) != 2 {
		t.Errorf("paused %d times, want 2 (between 3 waves)", len(pauses))
	}
	for _, hr := range rep.Hosts {
		if want := int(hr.Host.Name[0]-'a') + 1; hr.Wave != want {
			t.Errorf("%s in wave %d, want %d", hr.Host.Name, hr.Wave, want)
		}
	}
	if len(rec.steps) != 3 {
		t.Errorf("steps %q, want three waves", rec.steps)
	}
}

func TestJobsBoundParallelism(t *testing.T) {
	hosts := map[string]behaviour{}
	var names []string
	for i := range 6 {
		n := fmt.Sprintf("h%d", i)
		hosts[n] = good
		names = append(names, n)
	}
	fa := newFake(hosts)
	rollout.New(fa, nil, nil, rollout.Options{Mode: rollout.ModeBuild, Jobs: 2, Sleep: noSleep}, nil).Run(context.Background(), hostsOf(names...))
	if fa.maxRun > 2 {
		t.Errorf("%d deployments at once, want at most 2", fa.maxRun)
	}
}

func TestVerdicts(t *testing.T) {
	refused := &rollout.AgentError{Host: "a", Kind: rollout.ErrControlDown}
	tests := []struct {
		name string
		hr   rollout.HostReport
		want rollout.Verdict
	}{
		{"confirmed", rollout.HostReport{Result: &rollout.Result{Outcome: rollout.OutcomeConfirmed}}, rollout.VerdictOK},
		{"rolled back", rollout.HostReport{Result: &rollout.Result{Outcome: rollout.OutcomeRolledBack}}, rollout.VerdictRolledBack},
		{"manual", rollout.HostReport{Result: &rollout.Result{Outcome: rollout.OutcomeManualIntervention}}, rollout.VerdictManual},
		{"reboot", rollout.HostReport{Result: &rollout.Result{Outcome: rollout.OutcomeRebootRequired}}, rollout.VerdictRebootRequired},
		{"failed", rollout.HostReport{Result: &rollout.Result{Outcome: rollout.OutcomeFailed}}, rollout.VerdictFailed},
		{"skipped", rollout.HostReport{Skipped: true}, rollout.VerdictFailed},
		{"refused (control down is a refusal)", rollout.HostReport{Err: refused}, rollout.VerdictRefused},
		{"unreachable", rollout.HostReport{Err: &rollout.AgentError{Kind: rollout.ErrUnreachable}}, rollout.VerdictError},
		{"other error", rollout.HostReport{Err: errors.New("x")}, rollout.VerdictError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.hr.Verdict(); got != tc.want {
				t.Errorf("Verdict = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestParseBatch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rollout.Waves
		bad  bool
	}{
		{in: "", want: rollout.Waves{}},
		{in: "3", want: rollout.Waves{Size: 3}},
		{in: "25%", want: rollout.Waves{Percent: 25}},
		{in: "0", bad: true},
		{in: "101%", bad: true},
		{in: "x", bad: true},
	} {
		got, err := rollout.ParseBatch(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseBatch(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

// A stream that breaks and the Watches after it replay the deployment from
// its start: the observer sees every event once.
func TestReattachShowsEventsOnce(t *testing.T) {
	for _, b := range []behaviour{dropStream, neverConfirms} {
		fa := newFake(map[string]behaviour{"a": b})
		rec := &recorder{}
		rollout.New(fa, nil, rec, rollout.Options{Sleep: noSleep}, nil).Run(context.Background(), hostsOf("a"))
		var ids []string
		for id := range fa.deps {
			ids = append(ids, id)
		}
		if len(ids) != 1 {
			t.Fatalf("deployments %q, want one", ids)
		}
		if want := len(fa.deps[ids[0]]); rec.evs["a"] != want {
			t.Errorf("behaviour %d: observer saw %d events, want %d (each once)", b, rec.evs["a"], want)
		}
	}
}

type orderObserver struct {
	rollout.NopObserver
	mu    *sync.Mutex
	order *[]string
}

func (o orderObserver) Event(host string, ev rollout.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ev.Kind == rollout.EventPhaseStarted {
		*o.order = append(*o.order, "==> "+ev.Phase.String())
	}
}

// The confirm route (a new tailnet node) is opened once, as the health
// checks start — after the switch ended, so its key cannot reach a host
// before the switch cut it off — not on the switch's start.
func TestConfirmRouteOpensWhenHealthStarts(t *testing.T) {
	var order []string
	fa := newFake(map[string]behaviour{"a": good})
	fa.order = &order
	rollout.New(fa, nil, orderObserver{mu: &fa.mu, order: &order}, rollout.Options{Sleep: noSleep}, nil).Run(context.Background(), hostsOf("a"))
	got := strings.Join(order, "\n")
	i, j, k := strings.Index(got, "==> switch"), strings.Index(got, "==> health"), strings.Index(got, "OPEN CONFIRM ROUTE")
	if i < 0 || j < 0 || k < 0 || !(i < j && j < k) || strings.Count(got, "OPEN CONFIRM ROUTE") != 1 {
		t.Errorf("the confirm route must open once, as health starts:\n%s", got)
	}
}

// With HoldForApproval a prompted deploy is one deployment per host: held
// after its dry activation, approved with the exact store path, then
// switched and confirmed on the same stream; no second deployment.
func TestHeldForApprovalIsOneDeployment(t *testing.T) {
	yes := rollout.ApproverFunc(func(ready, failed []*rollout.HostReport) (bool, error) { return true, nil })
	no := rollout.ApproverFunc(func(ready, failed []*rollout.HostReport) (bool, error) { return false, nil })
	tests := []struct {
		name     string
		hosts    map[string]behaviour
		approver rollout.Approver
		o        rollout.Options
		want     map[string]string
		calls    []string
	}{
		{
			name:     "approved",
			hosts:    map[string]behaviour{"a": good},
			approver: yes,
			want:     map[string]string{"a": "confirmed"},
			calls:    []string{"a switch (held)", "a approve /nix/store/x-a", "a confirm"},
		},
		{
			name:     "declined: nothing changes",
			hosts:    map[string]behaviour{"a": good},
			approver: no,
			want:     map[string]string{"a": "not approved"},
			calls:    []string{"a switch (held)", "a decline"},
		},
		{
			name:     "the agent no longer holds it: the exact path is deployed anew",
			hosts:    map[string]behaviour{"a": approvalExpired},
			approver: yes,
			want:     map[string]string{"a": "confirmed"},
			calls:    []string{"a switch (held)", "a approve /nix/store/x-a", "a switch /nix/store/x-a", "a confirm"},
		},
		{
			name:     "a halted rollout declines the deployments it still holds",
			hosts:    map[string]behaviour{"a": failBuild, "b": good},
			approver: yes,
			o:        rollout.Options{Canary: 1},
			want:     map[string]string{"a": "failed", "b": "skipped: canary a was not confirmed"},
			calls:    []string{"a switch (held)", "b switch (held)", "b decline"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fa := newFake(tc.hosts)
			tc.o.Sleep, tc.o.Approver, tc.o.HoldForApproval = noSleep, tc.approver, true
			var names []string
			for h := range tc.hosts {
				names = append(names, h)
			}
			slices.Sort(names)
			rep, err := rollout.New(fa, nil, nil, tc.o, nil).Run(context.Background(), hostsOf(names...))
			if err != nil {
				t.Fatal(err)
			}
			got := outcomes(rep)
			for h, w := range tc.want {
				if got[h] != w {
					t.Errorf("%s: %q, want %q", h, got[h], w)
				}
			}
			if !slices.Equal(fa.calls, tc.calls) {
				t.Errorf("calls = %q, want %q", fa.calls, tc.calls)
			}
		})
	}
}
