package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Recording fakes for the engine's three ports. They keep state the way the
// real parts do (a profile with generations, a current-system symlink,
// transient units that outlive the engine) so that restart and rollback
// behave as on a host.

// fakeNix is a scripted nix with an in-memory system profile.
type fakeNix struct {
	mu sync.Mutex

	hosts       []string
	hostsErr    error
	warnings    []string
	builds      map[string]string // installable -> store path
	drvs        map[string]string // derivation Evaluate returned -> installable
	buildLines  []string
	buildErr    error
	buildGate   chan struct{} // when set, Build waits for it (or ctx)
	diff        []ClosureChange
	sizes       map[string]int64 // closure sizes by path (ClosureSizes)
	sizesErr    error
	sizeCalls   int
	setErr      error
	setErrPath  string // when set, setErr only fails SetProfile of this path
	profileName string // the profile the engine must use

	gens  []Generation
	calls []string
}

func newFakeNix(profile string) *fakeNix {
	return &fakeNix{profileName: profile, builds: map[string]string{}, drvs: map[string]string{}}
}

func (n *fakeNix) record(format string, args ...any) {
	n.calls = append(n.calls, fmt.Sprintf(format, args...))
}

// scriptBuild makes Build of ref#attr return path.
func (n *fakeNix) scriptBuild(ref, attr, path string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.builds[toplevelInstallable(ref, attr)] = path
}

func toplevelInstallable(ref, attr string) string {
	return ref + "#nixosConfigurations." + attr + ".config.system.build.toplevel"
}

func (n *fakeNix) Build(ctx context.Context, installable string, onLine func(string)) (string, error) {
	n.mu.Lock()
	n.record("build %s", installable)
	path, ok := n.builds[installable]
	n.mu.Unlock()
	return n.built(ctx, installable, path, ok, onLine)
}

// Evaluate is the one evaluation of a deploy (evalonce.go): the hosts, the
// warnings and a derivation named after the scripted store path.
func (n *fakeNix) Evaluate(ctx context.Context, flakeRef, host string, onLine func(string)) (Evaluation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("evaluate %s %s", flakeRef, host)
	if n.hostsErr != nil {
		return Evaluation{}, n.hostsErr
	}
	ev := Evaluation{Hosts: slices.Clone(n.hosts), Found: slices.Contains(n.hosts, host)}
	if ev.Found {
		ev.Warnings = slices.Clone(n.warnings)
		ev.OutPath = n.builds[toplevelInstallable(flakeRef, host)]
		ev.DrvPath = flakeRef + "#" + host + ".drv"
		if ev.OutPath != "" {
			ev.DrvPath = ev.OutPath + ".drv"
		}
		n.drvs[ev.DrvPath] = toplevelInstallable(flakeRef, host)
	}
	return ev, nil
}

// BuildDerivation builds a derivation Evaluate returned, as Build does its
// installable.
func (n *fakeNix) BuildDerivation(ctx context.Context, drvPath string, onLine func(string)) (string, error) {
	n.mu.Lock()
	n.record("build %s", drvPath)
	installable, ok := n.drvs[drvPath]
	path := n.builds[installable]
	n.mu.Unlock()
	return n.built(ctx, drvPath, path, ok && path != "", onLine)
}

func (n *fakeNix) built(ctx context.Context, installable, path string, ok bool, onLine func(string)) (string, error) {
	n.mu.Lock()
	gate, lines, err := n.buildGate, n.buildLines, n.buildErr
	n.mu.Unlock()
	for _, l := range lines {
		onLine(l)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", fmt.Errorf("nix build: %w", ctx.Err())
		}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("nix build: %w", err)
	}
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("nix build %s: no scripted store path", installable)
	}
	return path, nil
}

// setHosts replaces the flake's nixosConfigurations attributes.
func (n *fakeNix) setHosts(hosts ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts = hosts
}

func (n *fakeNix) Hosts(ctx context.Context, flakeRef string) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("hosts %s", flakeRef)
	return slices.Clone(n.hosts), n.hostsErr
}

func (n *fakeNix) Warnings(ctx context.Context, flakeRef, host string) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("warnings %s %s", flakeRef, host)
	return slices.Clone(n.warnings), nil
}

func (n *fakeNix) DiffClosures(ctx context.Context, oldPath, newPath string) ([]ClosureChange, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("diff-closures %s %s", oldPath, newPath)
	return slices.Clone(n.diff), nil
}

// ClosureSizes answers from n.sizes; it is not recorded in calls.
func (n *fakeNix) ClosureSizes(ctx context.Context, paths ...string) (map[string]int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sizeCalls++
	if n.sizesErr != nil {
		return nil, n.sizesErr
	}
	out := map[string]int64{}
	for _, p := range paths {
		if s, ok := n.sizes[p]; ok {
			out[p] = s
		}
	}
	return out, nil
}

// SetProfile behaves like nix-env --set: a new generation unless the newest
// one already holds storePath; either way it becomes current.
func (n *fakeNix) SetProfile(ctx context.Context, profile, storePath string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("set-profile %s %s", profile, storePath)
	if profile != n.profileName {
		return fmt.Errorf("fake nix: unexpected profile %s", profile)
	}
	if n.setErr != nil && (n.setErrPath == "" || n.setErrPath == storePath) {
		return n.setErr
	}
	n.setLocked(storePath)
	return nil
}

func (n *fakeNix) setLocked(storePath string) {
	for i := range n.gens {
		n.gens[i].Current = false
	}
	if k := len(n.gens); k > 0 && n.gens[k-1].Path == storePath {
		n.gens[k-1].Current = true
		return
	}
	num := int64(1)
	if k := len(n.gens); k > 0 {
		num = n.gens[k-1].Number + 1
	}
	n.gens = append(n.gens, Generation{Number: num, Created: time.Now(), Current: true, Path: storePath})
}

// seed adds generations without recording calls (the host's history).
func (n *fakeNix) seed(paths ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range paths {
		n.setLocked(p)
	}
}

func (n *fakeNix) Generations(ctx context.Context, profile string) ([]Generation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if profile != n.profileName {
		return nil, fmt.Errorf("fake nix: unexpected profile %s", profile)
	}
	return slices.Clone(n.gens), nil
}

// callsWith returns the recorded calls starting with prefix.
func (n *fakeNix) callsWith(prefix string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, c := range n.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (n *fakeNix) setGate(g chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.buildGate = g
}

// switchScript says how a fake switch-to-configuration of one toplevel ends.
type switchScript struct {
	Code     int           // exit code systemd records
	NoLink   bool          // leave the current-system link alone (implied by exit 1)
	Hold     chan struct{} // when set, the unit runs until it is closed
	Lines    []string      // output appended to the log; default two lines
	Killed   bool          // the unit is killed by SIGKILL
	TimedOut bool          // systemd stops the unit at its deadline
	Gone     bool          // the unit disappears without a record
}

// fakeActivator runs switches asynchronously like systemd: the unit outlives
// the call (and the engine), points the current-system link at the
// toplevel, appends output to its output file and keeps its end (exit code,
// signal, timeout) until it is cleared.
type fakeActivator struct {
	current string // the current-system symlink
	// delay is how long a switch runs before its first output. With no
	// delay, output written before the engine starts following the log
	// is not streamed (it is still in the log file); see waitUnit.
	delay time.Duration

	mu       sync.Mutex
	dry      map[string][]string    // toplevel -> dry-activate output
	dryCode  int                    // dry-activate's exit code
	dryHold  chan struct{}          // when set, dry-activate runs until it is closed
	checks   map[string]checkScript // toplevel -> "switch-to-configuration check"
	checked  []string               // toplevels checked (apart from calls: most tests do not look)
	startErr error
	scripts  map[string]switchScript // toplevel -> script
	units    map[string]*fakeUnit
	started  map[string]chan struct{} // unit -> closed when it starts
	calls    []string
	specs    []UnitSpec // every unit started
	cleared  []string   // units cleared, in order

	stop chan struct{}
	wg   sync.WaitGroup
}

type fakeUnit struct {
	status  UnitStatus
	cleared bool // systemd dropped it (ClearUnit, or it vanished)
	done    chan struct{}
}

func newFakeActivator(t *testing.T, current string) *fakeActivator {
	t.Helper()
	a := &fakeActivator{
		current: current, delay: 10 * time.Millisecond,
		dry: map[string][]string{}, scripts: map[string]switchScript{}, units: map[string]*fakeUnit{}, checks: map[string]checkScript{},
		started: map[string]chan struct{}{}, stop: make(chan struct{}),
	}
	t.Cleanup(func() {
		close(a.stop)
		a.wg.Wait()
	})
	return a
}

func (a *fakeActivator) script(toplevel string, s switchScript) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.scripts[toplevel] = s
}

func (a *fakeActivator) StartUnit(ctx context.Context, spec UnitSpec) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch spec.Mode {
	case "dry-activate":
		a.calls = append(a.calls, "dry-activate "+spec.Toplevel)
	case "check":
		a.checked = append(a.checked, spec.Toplevel)
	default:
		a.calls = append(a.calls, fmt.Sprintf("start-switch %s %s %s", spec.Unit, spec.Toplevel, spec.Mode))
	}
	a.specs = append(a.specs, spec)
	if a.startErr != nil && spec.Mode != "dry-activate" && spec.Mode != "check" {
		return a.startErr
	}
	switch spec.Mode {
	case "switch", "boot", "test":
	case "dry-activate":
		end := UnitStatus{State: UnitExited, ExitCode: a.dryCode}
		u := &fakeUnit{status: end, done: make(chan struct{})}
		appendLines(spec.Output, a.dry[spec.Toplevel])
		a.units[spec.Unit] = u
		if a.dryHold == nil {
			close(u.done)
			return nil
		}
		u.status = UnitStatus{State: UnitRunning}
		hold := a.dryHold
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(u.done)
			select {
			case <-hold:
			case <-a.stop:
			}
			a.mu.Lock()
			if u.status.State == UnitRunning {
				u.status = end
			}
			a.mu.Unlock()
		}()
		return nil
	case "check":
		c := a.checks[spec.Toplevel]
		u := &fakeUnit{status: UnitStatus{State: UnitExited, ExitCode: c.Code}, done: make(chan struct{})}
		appendLines(spec.Output, c.Lines)
		a.units[spec.Unit] = u
		if c.Hold == nil {
			close(u.done)
			return nil
		}
		u.status = UnitStatus{State: UnitRunning}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(u.done)
			select {
			case <-c.Hold:
			case <-a.stop:
				return
			}
			a.mu.Lock()
			if u.status.State == UnitRunning {
				u.status = UnitStatus{State: UnitExited, ExitCode: c.Code}
			}
			a.mu.Unlock()
		}()
		return nil
	default:
		return fmt.Errorf("unknown switch mode %q", spec.Mode)
	}
	if u := a.units[spec.Unit]; u != nil && !u.cleared {
		return fmt.Errorf("unit %s already exists", spec.Unit)
	}
	s := a.scripts[spec.Toplevel]
	u := &fakeUnit{status: UnitStatus{State: UnitRunning}, done: make(chan struct{})}
	a.units[spec.Unit] = u
	if c := a.startedLocked(spec.Unit); !isClosed(c) {
		close(c)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.runSwitch(u, spec, s)
	}()
	return nil
}

func appendLines(path string, lines []string) {
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		for _, l := range lines {
			fmt.Fprintln(f, l)
		}
		f.Close()
	}
}

func (a *fakeActivator) runSwitch(u *fakeUnit, spec UnitSpec, s switchScript) {
	end := UnitStatus{State: UnitExited, ExitCode: s.Code}
	if spec.Mode == "boot" && s.Code == stcRebootRequired {
		end.ExitCode = 0 // boot only installs the boot loader entry: it never exits 100
	}
	defer func() {
		a.mu.Lock()
		if u.status.State == UnitRunning {
			u.status = end
			u.cleared = u.cleared || s.Gone
		}
		a.mu.Unlock()
		close(u.done)
	}()
	select {
	case <-time.After(a.delay):
	case <-a.stop:
		end = UnitStatus{State: UnitRunning}
		return
	}
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-a.stop:
			end = UnitStatus{State: UnitRunning}
			return
		}
	}
	lines := s.Lines
	if lines == nil {
		lines = []string{"activating the configuration...", "setting up /etc..."}
	}
	appendLines(spec.Output, lines)
	switch {
	case s.Killed:
		end = UnitStatus{State: UnitKilled, Signal: "SIGKILL", Result: "signal"}
	case s.TimedOut:
		end = UnitStatus{State: UnitTimedOut, Result: "timeout", Deadline: spec.Deadline}
	case s.Gone:
		end = UnitStatus{State: UnitGone}
	}
	if spec.Mode != "boot" && !s.NoLink && s.Code != 1 && end.State == UnitExited {
		tmp := a.current + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(spec.Toplevel, tmp); err == nil {
			os.Rename(tmp, a.current)
		}
	}
}

// checkScript says how a fake "switch-to-configuration check" ends.
type checkScript struct {
	Code  int
	Lines []string
	Hold  chan struct{} // when set, the check runs until it is closed
}

func (a *fakeActivator) UnitStatus(ctx context.Context, unit string) (UnitStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.units[unit]
	if u == nil || u.cleared {
		return UnitStatus{State: UnitGone}, nil
	}
	return u.status, nil
}

func (a *fakeActivator) ClearUnit(ctx context.Context, unit string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.units[unit]; u != nil && !u.cleared {
		a.cleared = append(a.cleared, unit)
		u.cleared = true
		if u.status.State == UnitRunning {
			u.status = UnitStatus{State: UnitGone} // stopped
		}
	}
	return nil
}

// waitCleared returns the cleared units once there are n of them, or after
// waitTimeout.
func (a *fakeActivator) waitCleared(n int) []string {
	deadline := time.Now().Add(waitTimeout)
	for {
		a.mu.Lock()
		cleared := slices.Clone(a.cleared)
		a.mu.Unlock()
		if len(cleared) >= n || time.Now().After(deadline) {
			return cleared
		}
		time.Sleep(time.Millisecond)
	}
}

// loaded reports whether systemd (the fake) still holds unit.
func (a *fakeActivator) loaded(unit string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.units[unit]
	return u != nil && !u.cleared
}

func (a *fakeActivator) startedLocked(unit string) chan struct{} {
	c := a.started[unit]
	if c == nil {
		c = make(chan struct{})
		a.started[unit] = c
	}
	return c
}

// waitStarted waits until unit has been started.
func (a *fakeActivator) waitStarted(t *testing.T, unit string) {
	t.Helper()
	a.mu.Lock()
	c := a.startedLocked(unit)
	a.mu.Unlock()
	select {
	case <-c:
	case <-time.After(waitTimeout):
		t.Fatalf("unit %s was not started", unit)
	}
}

// finished returns a channel closed when unit has ended.
func (a *fakeActivator) finished(t *testing.T, unit string) <-chan struct{} {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.units[unit]
	if u == nil {
		t.Fatalf("unit %s was never started", unit)
	}
	return u.done
}

func (a *fakeActivator) callsWith(prefix string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, c := range a.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// fakeHealth answers from a script and records what it was asked.
type fakeHealth struct {
	mu          sync.Mutex
	ok          bool
	reason      string
	err         error
	reports     []HealthReport
	baselineErr error
	// failed are the units systemd reports failed (FailedUnits); Check
	// fails on those not in its baseline, like the real checker.
	failed []string

	baselines int
	checks    []healthCall
	// hold, when set, keeps Check running until it is closed.
	hold chan struct{}
}

type healthCall struct {
	Baseline      []string
	ExtraCritical []string
}

func newFakeHealth() *fakeHealth {
	return &fakeHealth{ok: true, reports: []HealthReport{
		{Name: "system", OK: true, Detail: "running"},
		{Name: "sshd.service", OK: true, Detail: "active"},
	}}
}

func (h *fakeHealth) FailedUnits(ctx context.Context) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.baselines++
	if h.baselineErr != nil {
		return nil, h.baselineErr
	}
	return slices.Clone(h.failed), nil
}

func (h *fakeHealth) Check(ctx context.Context, baseline []string, extraCritical []string, report func(HealthReport)) (HealthVerdict, error) {
	h.mu.Lock()
	h.checks = append(h.checks, healthCall{Baseline: slices.Clone(baseline), ExtraCritical: slices.Clone(extraCritical)})
	v := HealthVerdict{OK: h.ok, Reason: h.reason}
	err, reports, failed, hold := h.err, slices.Clone(h.reports), slices.Clone(h.failed), h.hold
	h.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return HealthVerdict{}, ctx.Err()
		}
	}
	for _, r := range reports {
		report(r)
	}
	for _, u := range failed {
		if slices.Contains(baseline, u) {
			v.PreviouslyFailed = append(v.PreviouslyFailed, u)
			report(HealthReport{Name: "failed-unit " + u, OK: true, Detail: "failed, but already failed before the switch"})
			continue
		}
		v.NewlyFailed = append(v.NewlyFailed, u)
		report(HealthReport{Name: "failed-unit " + u, OK: false, Detail: "failed since the baseline"})
		if v.OK {
			v.OK, v.Reason = false, "failed-unit "+u+": failed since the baseline"
		}
	}
	return v, err
}

func (h *fakeHealth) script(ok bool, reason string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok, h.reason, h.err = ok, reason, err
}

// setFailed sets the units systemd reports failed.
func (h *fakeHealth) setFailed(units ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = units
}

func (h *fakeHealth) calls() (int, []healthCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.baselines, slices.Clone(h.checks)
}

// fakeClock is time.Now shifted by an offset a test moves forward.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// errFake is a scripted failure.
var errFake = errors.New("fake failure")

// storePath makes a fake toplevel under dir with a nixos-version file and
// returns its resolved path (what /run/current-system resolves to).
func storePath(t *testing.T, dir, name, version string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "nixos-version"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
