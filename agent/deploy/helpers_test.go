package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/journal"
)

// waitTimeout bounds every wait for an event; the suite's own timings are
// tens of milliseconds.
const waitTimeout = 10 * time.Second

const (
	testHost = "yoga"
	testRef  = "path:/var/lib/panther-agent/sources/abc"
)

// harness is one host: fakes, directories and a journal that outlive an
// engine, so a test can restart the engine on the same state.
type harness struct {
	t      *testing.T
	dir    string // state: journal, store, run
	opts   Options
	nix    *fakeNix
	act    *fakeActivator
	dm     *fakeDeadman // when set, the engine's activator (act with a dead-man)
	health *fakeHealth
	j      *journal.Journal
	clock  *fakeClock
	e      *Engine

	old, new string // store paths: the running system and the one the flake builds
}

// newHarness builds a host running h.old (generation 1) whose flake builds
// h.new for testHost, and starts an engine on it.
func newHarness(t *testing.T) *harness {
	t.Helper()
	h := newBareHarness(t)
	h.nix.seed(h.old)
	h.link(h.old)
	h.start()
	return h
}

// newBareHarness is newHarness without a running system and without an engine.
func newBareHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"store", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, dir: dir, clock: &fakeClock{}}
	h.opts = Options{
		Host:           testHost,
		Profile:        filepath.Join(dir, "profiles", "system"),
		CurrentSystem:  filepath.Join(dir, "run", "current-system"),
		RuntimeDir:     filepath.Join(dir, "run", "panther-agent"),
		GCRootDir:      filepath.Join(dir, "gcroots"),
		DefaultConfirm: 200 * time.Millisecond,
		PollInterval:   5 * time.Millisecond,
		BootedSystem:   filepath.Join(dir, "run", "booted-system"),
		SwitchLock:     filepath.Join(dir, "run", "nixos", "switch-to-configuration.lock"),
	}
	j, err := journal.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	h.j = j
	h.old = storePath(t, filepath.Join(dir, "store"), "aaaa-nixos-system-yoga-24.05", "24.05.1")
	h.new = storePath(t, filepath.Join(dir, "store"), "bbbb-nixos-system-yoga-24.11", "24.11.2")
	h.nix = newFakeNix(h.opts.Profile)
	h.nix.hosts = []string{"web1", testHost}
	h.nix.scriptBuild(testRef, testHost, h.new)
	h.act = newFakeActivator(t, h.opts.CurrentSystem)
	h.health = newFakeHealth()
	return h
}

// link points the current-system link at p, as a boot into p would.
func (h *harness) link(p string) {
	h.t.Helper()
	os.Remove(h.opts.CurrentSystem)
	if err := os.Symlink(p, h.opts.CurrentSystem); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) current() string {
	p, err := filepath.EvalSymlinks(h.opts.CurrentSystem)
	if err != nil {
		return ""
	}
	return p
}

// start builds and starts an engine on the harness's state; the test's
// cleanup closes it.
func (h *harness) start() *Engine {
	h.t.Helper()
	return h.startWith(nil)
}

// startWith starts the engine on the harness's ports, with mod (if set)
// changing the dependencies first (another Agent or Host port, say).
func (h *harness) startWith(mod func(*Deps)) *Engine {
	h.t.Helper()
	var act Activator = h.act
	if h.dm != nil {
		act = h.dm
	}
	deps := Deps{
		Nix: h.nix, Activator: act, Health: h.health, Journal: h.j,
		Log: testLogger(h.t), Now: h.clock.now,
	}
	if mod != nil {
		mod(&deps)
	}
	e, err := New(h.opts, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(e.Close)
	if err := e.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.e = e
	return e
}

// restart closes the engine and starts a new one on the same journal,
// directories, profile and units, as an agent restart does.
func (h *harness) restart() *Engine {
	h.t.Helper()
	h.e.Close()
	return h.start()
}

// reboot forgets the runtime dir's boot token, as a reboot clears /run.
func (h *harness) reboot() {
	h.t.Helper()
	if err := os.Remove(filepath.Join(h.opts.RuntimeDir, "boot-token")); err != nil {
		h.t.Fatal(err)
	}
}

func testLogger(t *testing.T) hclog.Logger {
	if os.Getenv("PANTHER_TEST_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Trace, Output: os.Stderr})
}

// switchReq is a deploy of the harness's flake.
func switchReq(id string) Request {
	return Request{
		ID: id, Action: ActionSwitch, FlakeRef: testRef, FlakeAttr: testHost,
		SourceDigest: "sha256-abc", RequestedBy: "alice", KeyID: "key1",
	}
}

// submit submits req and returns a watcher on its events.
func (h *harness) submit(req Request) *watcher {
	h.t.Helper()
	sub, err := h.e.Submit(context.Background(), req)
	if err != nil {
		h.t.Fatalf("Submit %s: %v", req.ID, err)
	}
	return &watcher{t: h.t, sub: sub}
}

func (h *harness) watch(id string) *watcher {
	h.t.Helper()
	sub, err := h.e.Watch(id)
	if err != nil {
		h.t.Fatalf("Watch %s: %v", id, err)
	}
	return &watcher{t: h.t, sub: sub}
}

func (h *harness) record(id string) *journal.Record {
	h.t.Helper()
	r, err := h.j.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// deployAwaiting runs a switch of h.new up to the confirmation window.
func (h *harness) deployAwaiting(req Request) (*watcher, *Awaiting) {
	h.t.Helper()
	w := h.submit(req)
	aw := w.awaiting()
	return w, aw
}

// watcher reads a subscription, keeping everything it has seen.
type watcher struct {
	t    *testing.T
	sub  *Subscription
	buf  []Event // read but not yet consumed by until
	seen []Event // consumed
	done bool
}

// until returns the first not yet consumed event for which match is true.
func (w *watcher) until(what string, match func(Event) bool) Event {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		for len(w.buf) > 0 {
			ev := w.buf[0]
			w.buf = w.buf[1:]
			w.seen = append(w.seen, ev)
			if match(ev) {
				return ev
			}
		}
		if w.done {
			w.t.Fatalf("deployment ended without %s; events:\n%s", what, dumpEvents(w.seen))
		}
		evs, done, err := w.sub.Next(ctx)
		if err != nil {
			w.t.Fatalf("waiting for %s: %v; events so far:\n%s", what, err, dumpEvents(w.seen))
		}
		w.buf = append(w.buf, evs...)
		w.done = done
	}
}

func (w *watcher) result() *Result {
	w.t.Helper()
	return w.until("the result", func(ev Event) bool { return ev.Kind == EventResult }).Result
}

func (w *watcher) awaiting() *Awaiting {
	w.t.Helper()
	return w.until("awaiting confirmation", func(ev Event) bool {
		if ev.Kind == EventResult {
			w.t.Fatalf("ended before awaiting confirmation: %+v; events:\n%s", *ev.Result, dumpEvents(w.seen))
		}
		return ev.Kind == EventAwaiting
	}).Awaiting
}

func (w *watcher) phaseFinished(p Phase) Event {
	w.t.Helper()
	return w.until("phase "+string(p)+" to finish", func(ev Event) bool {
		return ev.Kind == EventPhaseFinished && ev.Phase == p
	})
}

// kinds filters the events seen so far.
func (w *watcher) kinds(k EventKind) []Event {
	var out []Event
	for _, ev := range w.seen {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// phases lists "started"/"finished" phase events seen, as text.
func (w *watcher) phases() []string {
	var out []string
	for _, ev := range w.seen {
		switch ev.Kind {
		case EventPhaseStarted:
			out = append(out, string(ev.Phase)+" started")
		case EventPhaseFinished:
			s := string(ev.Phase) + " ok"
			if !ev.OK {
				s = string(ev.Phase) + " failed"
			}
			out = append(out, s)
		}
	}
	return out
}

func (w *watcher) hasLine(p Phase, line string) bool {
	for _, ev := range w.seen {
		if ev.Kind == EventLog && ev.Phase == p && ev.Line == line {
			return true
		}
	}
	return false
}

func (w *watcher) warnings() []string {
	var out []string
	for _, ev := range w.kinds(EventWarning) {
		out = append(out, ev.Line)
	}
	return out
}

func dumpEvents(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		line := formatEvent(ev)
		if line == "" {
			line = "?"
		}
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// wantOutcome checks a result's outcome and that its message contains each of msgs.
func wantOutcome(t *testing.T, res *Result, want journal.State, msgs ...string) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("outcome = %s (%s), want %s", res.Outcome, res.Message, want)
	}
	for _, m := range msgs {
		if !strings.Contains(res.Message, m) {
			t.Errorf("message %q does not contain %q", res.Message, m)
		}
	}
}
