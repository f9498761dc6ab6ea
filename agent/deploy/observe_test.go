package deploy

import (
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// finals records what the engine hands its OnResult observer.
type finals struct {
	mu  sync.Mutex
	got []Final
}

func (f *finals) add(x Final) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, x)
}

func (f *finals) list() []Final {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Final(nil), f.got...)
}

// startObserved starts an engine on h that reports final results to obs.
func startObserved(h *harness, obs *finals) {
	h.t.Helper()
	e, err := New(h.opts, Deps{
		Nix: h.nix, Activator: h.act, Health: h.health, Journal: h.j,
		Log: testLogger(h.t), Now: h.clock.now, OnResult: obs.add,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(e.Close)
	if err := e.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.e = e
}

func TestOnResultSeesEveryFinalResultOnce(t *testing.T) {
	t.Parallel()
	h := newBareHarness(t)
	h.nix.seed(h.old)
	h.link(h.old)
	obs := &finals{}
	startObserved(h, obs)

	// A switch that only set the boot default (exit 100).
	h.act.script(h.new, switchScript{Code: 100})
	h.submit(switchReq("rr")).result()
	// A confirmed switch.
	h.act.script(h.new, switchScript{Code: 0})
	req := switchReq("sw")
	req.ConfirmTimeout = time.Minute
	w, _ := h.deployAwaiting(req)
	h.clock.advance(3 * time.Second)
	if _, err := h.e.Confirm("sw", "alice"); err != nil {
		t.Fatal(err)
	}
	w.result()
	// A failed one.
	bad := switchReq("bad")
	h.nix.setHosts("web1")
	h.submit(bad).result()
	// Watching a finished deployment synthesizes a result: not a new final.
	h.watch("sw").result()

	got := obs.list()
	if len(got) != 3 {
		t.Fatalf("observer saw %d results, want 3: %+v", len(got), got)
	}
	reboot, sw, failed := got[0], got[1], got[2]
	if sw.ID != "sw" || sw.Result.Outcome != journal.StateConfirmed || sw.Action != ActionSwitch || sw.Host != testHost {
		t.Errorf("first final %+v, want sw confirmed", sw)
	}
	if sw.ConfirmLatency < 3*time.Second || sw.ConfirmLatency > 10*time.Second {
		t.Errorf("confirm latency %v, want about 3s", sw.ConfirmLatency)
	}
	if sw.RebootRequired {
		t.Error("confirmed switch with the booted kernel: RebootRequired is true")
	}
	if reboot.ID != "rr" || reboot.Result.Outcome != journal.StateRebootRequired || !reboot.RebootRequired {
		t.Errorf("third final %+v, want rr reboot-required", reboot)
	}
	if failed.ID != "bad" || failed.Result.Outcome != journal.StateFailed || failed.RebootRequired || failed.ConfirmLatency != 0 {
		t.Errorf("second final %+v, want bad failed", failed)
	}
}

func TestOnResultPanicDoesNotStopTheEngine(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	e, err := New(h.opts, Deps{
		Nix: h.nix, Activator: h.act, Health: h.health, Journal: h.j,
		Log: testLogger(t), Now: h.clock.now, OnResult: func(Final) { panic("observer bug") },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.e.Close()
	t.Cleanup(e.Close)
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	h.e = e
	req := switchReq("b1")
	req.Action = ActionBuild
	wantOutcome(t, h.submit(req).result(), journal.StateBuilt)
	req = switchReq("b2")
	req.Action = ActionBuild
	wantOutcome(t, h.submit(req).result(), journal.StateBuilt)
}
