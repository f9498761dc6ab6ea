package health_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/health"
)

// newChecker returns a checker over fake that polls every millisecond.
func newChecker(t *testing.T, fake *health.FakeSystemd) *health.Checker {
	t.Helper()
	c, err := health.New(health.Config{
		Connect:      fake.Connect,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug}),
		PollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// collect returns a report function and the results it saw.
func collect() (func(health.Result), func() []health.Result) {
	var mu sync.Mutex
	var seen []health.Result
	return func(r health.Result) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, r)
		}, func() []health.Result {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(seen)
		}
}

func TestNewNeedsConnect(t *testing.T) {
	if _, err := health.New(health.Config{}); err == nil {
		t.Fatal("New without Connect succeeded")
	}
}

func TestBaselineAndStatus(t *testing.T) {
	fake := health.NewFakeSystemd()
	fake.SetState("degraded")
	fake.SetUnit("b.service", "failed", "failed")
	fake.SetUnit("a.service", "failed", "failed")
	fake.SetUnit("ok.service", "active", "running")
	c := newChecker(t, fake)

	snap, err := c.Baseline(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if snap.SystemState != "degraded" || !slices.Equal(snap.Failed, []string{"a.service", "b.service"}) || snap.Taken.IsZero() {
		t.Errorf("baseline = %+v", snap)
	}
	state, failed, err := c.Status(t.Context())
	if err != nil || state != "degraded" || !slices.Equal(failed, snap.Failed) {
		t.Errorf("Status = %q, %v, %v", state, failed, err)
	}
	want := []string{"Connect", "SystemState", "ListUnits", "Close", "Connect", "SystemState", "ListUnits"}
	if got := fake.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
}

// TestFailedUnitsAsSwitchToConfigurationCountsThem: a service crash-looping
// in auto-restart after a non-zero exit is failed (switch-to-configuration
// exits 4 for it), one restarting after a clean exit is not.
func TestFailedUnitsAsSwitchToConfigurationCountsThem(t *testing.T) {
	fake := health.NewFakeSystemd()
	fake.SetState("running")
	fake.SetUnit("crashloop.service", "activating", "auto-restart")
	fake.SetExecMainStatus("crashloop.service", 1)
	fake.SetUnit("periodic.service", "activating", "auto-restart")
	fake.SetUnit("gone.socket", "failed", "failed")
	c := newChecker(t, fake)
	snap, err := c.Baseline(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"crashloop.service", "gone.socket"}; !slices.Equal(snap.Failed, want) {
		t.Errorf("failed = %q, want %q", snap.Failed, want)
	}
}

// TestStatusReusesOneConnection: every Status opened a new D-Bus connection
// (and listed every unit); now the connection stays open across calls and
// is opened again only after it failed.
func TestStatusReusesOneConnection(t *testing.T) {
	fake := health.NewFakeSystemd()
	fake.SetUnit("a.service", "failed", "failed")
	c := newChecker(t, fake)
	defer c.Close()
	for range 5 {
		if _, failed, err := c.Status(t.Context()); err != nil || !slices.Equal(failed, []string{"a.service"}) {
			t.Fatalf("Status = %v, %v", failed, err)
		}
	}
	count := func(call string) int {
		n := 0
		for _, c := range fake.Calls() {
			if c == call {
				n++
			}
		}
		return n
	}
	if n := count("Connect"); n != 1 {
		t.Errorf("5 Status calls opened %d connections, want 1", n)
	}
	// A failing connection is dropped and replaced within the same call.
	failOnce := true
	fake.OnCall(func(call string) {
		if call == "SystemState" && failOnce {
			failOnce = false
			fake.FailCalls(errors.New("connection closed"))
		} else if call == "Close" {
			fake.FailCalls(nil)
		}
	})
	if state, _, err := c.Status(t.Context()); err != nil || state != "running" {
		t.Fatalf("Status after the bus dropped: %q, %v", state, err)
	}
	if n := count("Connect"); n != 2 {
		t.Errorf("connections after a failure = %d, want 2", n)
	}
	c.Close()
	if n := count("Close"); n != 2 {
		t.Errorf("Close calls = %d, want 2", n)
	}
}

// TestConcurrentStatusCallsShareAnAnswer: callers that wait while another
// asks systemd share that answer instead of each listing every unit.
func TestConcurrentStatusCallsShareAnAnswer(t *testing.T) {
	fake := health.NewFakeSystemd()
	fake.OnCall(func(call string) {
		if call == "ListUnits" {
			time.Sleep(20 * time.Millisecond) // a slow bus: callers pile up
		}
	})
	c := newChecker(t, fake)
	defer c.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := c.Status(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for _, call := range fake.Calls() {
		if call == "ListUnits" {
			n++
		}
	}
	if n > 10 {
		t.Errorf("20 concurrent Status calls listed units %d times", n)
	}
}

func TestCheckSystemd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		states   []string
		units    [][3]string // name, active, sub
		baseline []string
		spec     health.Spec
		// flip, if set, changes the fake after the given call.
		flipAfter string
		flip      func(*health.FakeSystemd)

		wantOK         bool
		wantState      string
		wantNew        []string
		wantPrevious   []string
		wantFailedItem string // Kind/Name of a failing result
		wantDetail     string
	}{
		{
			name:      "healthy",
			states:    []string{"running"},
			units:     [][3]string{{"a.service", "active", "running"}},
			wantOK:    true,
			wantState: "running",
		},
		{
			name:           "unit failed since the baseline fails",
			states:         []string{"degraded"},
			units:          [][3]string{{"old.service", "failed", "failed"}, {"new.service", "failed", "failed"}},
			baseline:       []string{"old.service"},
			wantState:      "degraded",
			wantNew:        []string{"new.service"},
			wantPrevious:   []string{"old.service"},
			wantFailedItem: "failed-unit/new.service",
			wantDetail:     "failed since the baseline",
		},
		{
			name:         "unit already failed at the baseline passes",
			states:       []string{"degraded"},
			units:        [][3]string{{"old.service", "failed", "failed"}},
			baseline:     []string{"old.service"},
			wantOK:       true,
			wantState:    "degraded",
			wantPrevious: []string{"old.service"},
		},
		{
			name:           "without a baseline every failed unit counts",
			states:         []string{"degraded"},
			units:          [][3]string{{"old.service", "failed", "failed"}},
			wantState:      "degraded",
			wantNew:        []string{"old.service"},
			wantFailedItem: "failed-unit/old.service",
		},
		{
			name:      "waits while starting",
			states:    []string{"starting", "starting", "starting", "running"},
			wantOK:    true,
			wantState: "running",
		},
		{
			name:           "still starting after the startup timeout fails",
			states:         []string{"starting"},
			spec:           health.Spec{StartupTimeout: 20 * time.Millisecond},
			wantState:      "starting",
			wantFailedItem: "system-state/system",
			wantDetail:     "still starting after 20ms",
		},
		{
			name:           "maintenance fails",
			states:         []string{"maintenance"},
			wantState:      "maintenance",
			wantFailedItem: "system-state/system",
		},
		{
			name:      "critical unit active passes",
			states:    []string{"running"},
			units:     [][3]string{{"web.service", "active", "running"}},
			spec:      health.Spec{CriticalUnits: []string{"web.service"}},
			wantOK:    true,
			wantState: "running",
		},
		{
			name:           "critical unit inactive fails",
			states:         []string{"running"},
			units:          [][3]string{{"web.service", "inactive", "dead"}},
			spec:           health.Spec{CriticalUnits: []string{"web.service"}},
			wantState:      "running",
			wantFailedItem: "critical-unit/web.service",
			wantDetail:     "inactive (dead)",
		},
		{
			name:           "critical unit that does not exist fails",
			states:         []string{"running"},
			spec:           health.Spec{CriticalUnits: []string{"missing.service"}},
			wantState:      "running",
			wantFailedItem: "critical-unit/missing.service",
			wantDetail:     "inactive (dead), not-found",
		},
		{
			name:      "critical unit activating is waited for",
			states:    []string{"running"},
			units:     [][3]string{{"slow.service", "activating", "start"}},
			spec:      health.Spec{CriticalUnits: []string{"slow.service"}},
			flipAfter: "ListUnitsByNames slow.service",
			flip:      func(f *health.FakeSystemd) { f.SetUnit("slow.service", "active", "running") },
			wantOK:    true,
			wantState: "running",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := health.NewFakeSystemd()
			fake.SetState(tc.states...)
			for _, u := range tc.units {
				fake.SetUnit(u[0], u[1], u[2])
			}
			if tc.flip != nil {
				var once sync.Once
				fake.OnCall(func(call string) {
					if call == tc.flipAfter {
						once.Do(func() { tc.flip(fake) })
					}
				})
			}
			c := newChecker(t, fake)
			report, seen := collect()
			rep, err := c.Check(t.Context(), health.Snapshot{Failed: tc.baseline}, tc.spec, report)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if rep.OK != tc.wantOK {
				t.Errorf("OK = %v, want %v; reason %q", rep.OK, tc.wantOK, rep.Reason())
			}
			if rep.SystemState != tc.wantState {
				t.Errorf("SystemState = %q, want %q", rep.SystemState, tc.wantState)
			}
			if !slices.Equal(rep.NewlyFailed, tc.wantNew) || !slices.Equal(rep.PreviouslyFailed, tc.wantPrevious) {
				t.Errorf("newly failed %v (want %v), previously failed %v (want %v)", rep.NewlyFailed, tc.wantNew, rep.PreviouslyFailed, tc.wantPrevious)
			}
			if !slices.Equal(seen(), rep.Results) {
				t.Errorf("reported %v, report holds %v", seen(), rep.Results)
			}
			var failing []string
			for _, r := range rep.Results {
				if !r.OK {
					failing = append(failing, r.Kind+"/"+r.Name)
					if tc.wantDetail != "" && r.Detail != tc.wantDetail {
						t.Errorf("detail of %s = %q, want %q", r.Name, r.Detail, tc.wantDetail)
					}
				}
			}
			if tc.wantFailedItem == "" && len(failing) > 0 || tc.wantFailedItem != "" && !slices.Equal(failing, []string{tc.wantFailedItem}) {
				t.Errorf("failing results %v, want %q", failing, tc.wantFailedItem)
			}
			if !rep.OK && rep.Reason() == "" {
				t.Error("a failed report has no reason")
			}
			// One connection per check, always closed.
			calls := fake.Calls()
			if calls[0] != "Connect" || calls[len(calls)-1] != "Close" || countOf(calls, "Connect") != 1 {
				t.Errorf("calls %q: want one Connect first and Close last", calls)
			}
		})
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestCheckServiceChecks(t *testing.T) {
	var flaky atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
		case "/maintenance":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/flaky":
			if flaky.Add(1) < 3 {
				w.WriteHeader(http.StatusBadGateway)
			}
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	fast := func(c health.CheckSpec) health.CheckSpec {
		c.Interval = time.Millisecond
		if c.Timeout == 0 {
			c.Timeout = 2 * time.Second
		}
		return c
	}
	for _, tc := range []struct {
		name       string
		check      health.CheckSpec
		wantOK     bool
		wantDetail string // substring
	}{
		{name: "http ok", check: health.CheckSpec{Type: "http", URL: srv.URL + "/ok"}, wantOK: true, wantDetail: "200 OK"},
		{name: "http wrong status", check: health.CheckSpec{Type: "http", URL: srv.URL + "/broken", Retries: 1}, wantDetail: "status 500 Internal Server Error, want 200 (2 attempts)"},
		{name: "http expected non-200", check: health.CheckSpec{Type: "http", URL: srv.URL + "/maintenance", ExpectStatus: 503}, wantOK: true},
		{name: "http redirect not followed", check: health.CheckSpec{Type: "http", URL: srv.URL + "/redirect", Retries: -1}, wantDetail: "status 302 Found, want 200 (1 attempts)"},
		{name: "http passes on a retry", check: health.CheckSpec{Type: "http", URL: srv.URL + "/flaky"}, wantOK: true, wantDetail: "(attempt 3 of 4)"},
		{name: "http timeout", check: health.CheckSpec{Type: "http", URL: srv.URL + "/slow", Timeout: 50 * time.Millisecond, Retries: -1}, wantDetail: "timed out after 50ms"},
		{name: "http refused", check: health.CheckSpec{Type: "http", URL: "http://" + closedAddr + "/", Retries: -1}, wantDetail: "connection refused"},
		{name: "tcp ok", check: health.CheckSpec{Type: "tcp", Address: ln.Addr().String()}, wantOK: true, wantDetail: "connected to " + ln.Addr().String()},
		{name: "tcp refused", check: health.CheckSpec{Type: "tcp", Address: closedAddr, Retries: 2}, wantDetail: "(3 attempts)"},
		{name: "command ok", check: health.CheckSpec{Type: "command", Command: []string{"true"}}, wantOK: true, wantDetail: "true exited 0"},
		{name: "command fails with its output", check: health.CheckSpec{Type: "command", Command: []string{"sh", "-c", "echo broken >&2; exit 3"}, Retries: -1}, wantDetail: "exit status 3: broken"},
		{name: "command timeout kills its group", check: health.CheckSpec{Type: "command", Command: []string{"sh", "-c", "sleep 30 & sleep 30"}, Timeout: 100 * time.Millisecond, Retries: -1}, wantDetail: "timed out after 100ms"},
		{name: "command not found", check: health.CheckSpec{Type: "command", Command: []string{"/nonexistent/check"}, Retries: -1}, wantDetail: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check.Name = tc.name
			fake := health.NewFakeSystemd()
			begin := time.Now()
			rep, err := newChecker(t, fake).Check(t.Context(), health.Snapshot{}, health.Spec{Checks: []health.CheckSpec{fast(tc.check)}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(begin); d > 4*time.Second {
				t.Errorf("check took %v", d)
			}
			r := rep.Results[len(rep.Results)-1]
			if r.Name != tc.name || r.Kind != tc.check.Type {
				t.Fatalf("last result %+v is not the check", r)
			}
			if r.OK != tc.wantOK || rep.OK != tc.wantOK {
				t.Errorf("OK = %v (report %v), want %v: %s", r.OK, rep.OK, tc.wantOK, r.Detail)
			}
			if !strings.Contains(r.Detail, tc.wantDetail) {
				t.Errorf("detail %q does not contain %q", r.Detail, tc.wantDetail)
			}
		})
	}
}

func TestChecksRunConcurrentlyAndReportSerially(t *testing.T) {
	fake := health.NewFakeSystemd()
	var checks []health.CheckSpec
	for i := range 4 {
		checks = append(checks, health.CheckSpec{Name: fmt.Sprint("sleep-", i), Type: "command", Command: []string{"sleep", "0.3"}})
	}
	var inReport atomic.Int32
	var overlapped atomic.Bool
	var names []string
	begin := time.Now()
	rep, err := newChecker(t, fake).Check(t.Context(), health.Snapshot{}, health.Spec{Checks: checks}, func(r health.Result) {
		if inReport.Add(1) > 1 {
			overlapped.Store(true)
		}
		time.Sleep(5 * time.Millisecond)
		names = append(names, r.Name)
		inReport.Add(-1)
	})
	if err != nil || !rep.OK {
		t.Fatalf("Check: %v, %s", err, rep.Reason())
	}
	if d := time.Since(begin); d > 1100*time.Millisecond {
		t.Errorf("4 checks of 0.3 s took %v: not concurrent", d)
	}
	if overlapped.Load() {
		t.Error("report was called concurrently")
	}
	if len(names) != 5 {
		t.Errorf("reported %v", names)
	}
	// The report keeps the spec's order whatever order the checks ended in.
	for i, r := range rep.Results[1:] {
		if r.Name != checks[i].Name {
			t.Errorf("result %d is %s, want %s", i+1, r.Name, checks[i].Name)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	down := errors.New("bus down")
	for _, tc := range []struct {
		name    string
		setup   func(*health.FakeSystemd)
		timeout time.Duration
		spec    health.Spec
		wantErr error
	}{
		{name: "connect fails", setup: func(f *health.FakeSystemd) { f.FailConnect(down) }, wantErr: down},
		{name: "calls fail", setup: func(f *health.FakeSystemd) { f.FailCalls(down) }, wantErr: down},
		{name: "cancelled while settling", timeout: 10 * time.Millisecond, spec: health.Spec{Settle: time.Minute}, wantErr: context.DeadlineExceeded},
		{name: "invalid spec", spec: health.Spec{Checks: []health.CheckSpec{{Name: "x", Type: "ping"}}}, wantErr: health.ErrInvalidSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := health.NewFakeSystemd()
			if tc.setup != nil {
				tc.setup(fake)
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			rep, err := newChecker(t, fake).Check(ctx, health.Snapshot{}, tc.spec, nil)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if rep.OK {
				t.Error("report of a check that could not run is OK")
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec health.Spec
		want string // "" for valid
	}{
		{name: "empty", spec: health.Spec{}},
		{name: "all types", spec: health.Spec{CriticalUnits: []string{"a.service"}, Checks: []health.CheckSpec{
			{Name: "h", Type: "http", URL: "http://x/"}, {Name: "t", Type: "tcp", Address: "x:1"}, {Name: "c", Type: "command", Command: []string{"true"}},
		}}},
		{name: "no name", spec: health.Spec{Checks: []health.CheckSpec{{Type: "tcp", Address: "x:1"}}}, want: "has no name"},
		{name: "duplicate", spec: health.Spec{Checks: []health.CheckSpec{{Name: "a", Type: "tcp", Address: "x:1"}, {Name: "a", Type: "tcp", Address: "x:2"}}}, want: "duplicate name"},
		{name: "http without url", spec: health.Spec{Checks: []health.CheckSpec{{Name: "a", Type: "http"}}}, want: "needs a URL"},
		{name: "tcp without address", spec: health.Spec{Checks: []health.CheckSpec{{Name: "a", Type: "tcp"}}}, want: "needs an address"},
		{name: "command without argv", spec: health.Spec{Checks: []health.CheckSpec{{Name: "a", Type: "command"}}}, want: "needs a command"},
		{name: "unknown type", spec: health.Spec{Checks: []health.CheckSpec{{Name: "a", Type: "icmp"}}}, want: `unknown type "icmp"`},
		{name: "empty critical unit", spec: health.Spec{CriticalUnits: []string{""}}, want: "empty critical unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, health.ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want ErrInvalidSpec with %q", err, tc.want)
			}
		})
	}
}

func TestReportReason(t *testing.T) {
	rep := health.Report{Results: []health.Result{
		{Name: "system", Kind: health.KindSystemState, OK: true, Detail: "running"},
		{Name: "a.service", Kind: health.KindFailedUnit, Detail: "failed since the baseline"},
		{Name: "web", Kind: health.TypeHTTP, Detail: "GET http://x/: status 500"},
	}}
	want := "failed-unit a.service: failed since the baseline; http web: GET http://x/: status 500"
	if got := rep.Reason(); got != want {
		t.Errorf("Reason() = %q\nwant %q", got, want)
	}
	if got := (health.Report{OK: true}).Reason(); got != "" {
		t.Errorf("Reason of an OK report = %q", got)
	}
	if got := (health.Report{}).Reason(); got != "health check incomplete" {
		t.Errorf("Reason of an empty failed report = %q", got)
	}
}

func TestBusConnectorReportsAnUnreachableBus(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	sd, err := health.BusConnector("unix:path=" + t.TempDir() + "/no-bus")(ctx)
	if err == nil {
		sd.Close()
		t.Fatal("connected to a bus that does not exist")
	}
	if !strings.Contains(err.Error(), "no-bus") {
		t.Errorf("error %q does not name the address", err)
	}
}
