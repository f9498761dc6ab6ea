package sandboxtest

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/sandbox"
)

// ErrNotRunning is returned by calls that need a booted sandbox after Stop
// or while a boot failed.
var ErrNotRunning = sandbox.ErrNotRunning

// owner starts the cgroup name of every test sandbox (see
// sandbox.Options.Owner).
const owner = "panther-sandboxtest"

// Options configures Boot.
type Options struct {
	// Name is the hostname inside (UTS namespace) and part of the cgroup
	// name. Default "sandbox".
	Name string
	// StateDir holds the overlay's upper and work directories and the
	// console log; it survives Reboot, so it is the sandbox's disk.
	// Default: a new t.TempDir().
	StateDir string
	// NetNS gives the sandbox its own network namespace, joined to the host
	// by a veth pair with a /30 of its own (see IP and HostIP). Default
	// false: the sandbox shares the host's network.
	NetNS bool
	// Units maps unit file names to their content, written to
	// /etc/systemd/system before the first boot. Default none.
	Units map[string]string
	// Enable lists units (from Units or installed on the host) linked into
	// multi-user.target.wants before the first boot. Default none.
	Enable []string
	// Files maps absolute paths inside the sandbox to content written
	// before the first boot; content starting with "#!" is made
	// executable. Default none.
	Files map[string]string
	// HostDefaultPath keeps the machine's default PATH for units. Default
	// false: as on NixOS, a unit without Environment=PATH (a transient unit
	// of systemd-run) sees sandbox.SystemdBinDir only; see
	// sandbox.Options.HostDefaultPath.
	HostDefaultPath bool
	// ServicePackages are Debian packages linked into
	// sandbox.ServiceBinDir besides coreutils, findutils, grep and sed (a
	// NixOS service's `path`). Default none.
	ServicePackages []string
	// BootTimeout bounds each boot until systemd reports running or
	// degraded. Default 30s.
	BootTimeout time.Duration
	// StopTimeout bounds a clean shutdown before the sandbox is killed.
	// Default 10s.
	StopTimeout time.Duration
}

// Sandbox is a systemd booted as PID 1 of its own namespaces, bound to the
// test that booted it. Its methods are safe for concurrent use; Reboot and
// Crash change PID, Path and BusAddress.
type Sandbox struct {
	t    testing.TB
	core *sandbox.Sandbox
}

// Boot starts a sandbox and waits until systemd reports running or
// degraded. It skips the test when a prerequisite is missing (see Require),
// fails it if the boot fails, and registers Stop with t.Cleanup.
func Boot(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	Require(t, opts.NetNS)
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	begin := time.Now()
	core, err := sandbox.Boot(context.Background(), sandbox.Options{
		Name:            opts.Name,
		StateDir:        opts.StateDir,
		NetNS:           opts.NetNS,
		Units:           opts.Units,
		Enable:          opts.Enable,
		Files:           opts.Files,
		HostDefaultPath: opts.HostDefaultPath,
		ServicePackages: opts.ServicePackages,
		BootTimeout:     opts.BootTimeout,
		StopTimeout:     opts.StopTimeout,
		Owner:           owner,
	})
	if err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	s := &Sandbox{t: t, core: core}
	t.Cleanup(s.Stop)
	s.logBoot(t, begin)
	return s
}

func (s *Sandbox) logBoot(t testing.TB, begin time.Time) {
	t.Helper()
	t.Logf("sandboxtest: %s booted in %v (pid %d)", s.Name(), time.Since(begin).Round(time.Millisecond), s.PID())
}

// Core returns the underlying sandbox, for calls that take a context and
// return errors instead of failing the test.
func (s *Sandbox) Core() *sandbox.Sandbox { return s.core }

// Stop shuts the sandbox down cleanly (killing it after StopTimeout) and
// removes its cgroup and veth pair. Mounts and processes die with its
// namespaces. The state directory is left alone. Stop is idempotent and
// registered with t.Cleanup by Boot.
func (s *Sandbox) Stop() {
	if err := s.core.Stop(); err != nil {
		s.t.Errorf("sandboxtest: %v", err)
	}
}

// Reboot shuts the sandbox down cleanly and boots it again on the same state
// directory: files on disk survive, /run and every process start afresh.
func (s *Sandbox) Reboot(t testing.TB) {
	t.Helper()
	begin := time.Now()
	if err := s.core.Reboot(context.Background()); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	s.logBoot(t, begin)
}

// Crash kills every process of the sandbox at once, like a power cut, and
// boots it again on the same state directory. Data already written to files
// survives (there is no page cache to lose).
func (s *Sandbox) Crash(t testing.TB) {
	t.Helper()
	begin := time.Now()
	if err := s.core.Crash(context.Background()); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	s.logBoot(t, begin)
}

// Boots returns how many times the sandbox has booted: the first boot,
// each Reboot and Crash, and each reboot started inside it.
func (s *Sandbox) Boots() int { return s.core.Boots() }

// RebootFromInside runs `systemctl reboot` inside the sandbox, as an
// operator or a watchdog would: systemd stops every unit, ends, and the
// sandbox boots again on its state directory. It returns at once, with the
// boot count from before (pass it to WaitBoot); the reboot goes on.
func (s *Sandbox) RebootFromInside(t testing.TB) (boots int) {
	t.Helper()
	boots = s.Boots()
	// --no-block: the command would otherwise die with the namespace.
	s.Run(t, "systemctl", "reboot", "--no-block")
	t.Logf("sandbox %s: reboot started inside", s.Name())
	return boots
}

// WaitBoot waits until the sandbox has booted more than after times and
// systemd is up again (see RebootFromInside), bounded by timeout.
func (s *Sandbox) WaitBoot(t testing.TB, after int, timeout time.Duration) {
	t.Helper()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.core.WaitBoot(ctx, after); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
	t.Logf("sandbox %s: booted again (boot %d) %v after the wait began", s.Name(), s.Boots(), time.Since(begin).Round(time.Millisecond))
}

// Name returns the sandbox's hostname.
func (s *Sandbox) Name() string { return s.core.Name() }

// StateDir returns the directory holding the sandbox's disk and console log.
func (s *Sandbox) StateDir() string { return s.core.StateDir() }

// PID returns the host PID of the sandbox's systemd, or 0 when stopped.
func (s *Sandbox) PID() int { return s.core.PID() }

// Path returns the host path of p inside the running sandbox, through
// /proc/<pid>/root. It changes with every boot.
func (s *Sandbox) Path(p string) string { return s.core.Path(p) }

// BusAddress returns the D-Bus address of the sandbox's system bus as seen
// from the host, for godbus/go-systemd dialers. It changes with every boot.
func (s *Sandbox) BusAddress() string { return s.core.BusAddress() }

// IP returns the sandbox's address on the veth link (NetNS only; the zero
// Addr otherwise). It stays the same across reboots.
func (s *Sandbox) IP() netip.Addr { return s.core.IP() }

// HostIP returns the host's address on the veth link, the sandbox's default
// gateway (NetNS only; the zero Addr otherwise). The sandbox also reaches
// the host's other addresses through it.
func (s *Sandbox) HostIP() netip.Addr { return s.core.HostIP() }

// CutNetwork takes the host end of the veth link down: the sandbox is cut
// off, like a host losing its network. Needs NetNS.
func (s *Sandbox) CutNetwork(t testing.TB) {
	t.Helper()
	if err := s.core.CutNetwork(context.Background()); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
}

// RestoreNetwork brings the veth link back up after CutNetwork.
func (s *Sandbox) RestoreNetwork(t testing.TB) {
	t.Helper()
	if err := s.core.RestoreNetwork(context.Background()); err != nil {
		t.Fatalf("sandboxtest: %v", err)
	}
}

// Command returns a command that runs argv inside the sandbox: in all its
// namespaces, with its root and a minimal environment (PATH, HOME, LANG)
// that callers may extend through Cmd.Env. It is killed with ctx. When the
// sandbox is not running, the command's Start returns ErrNotRunning.
func (s *Sandbox) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return s.core.Command(ctx, argv...)
}

// Exec runs argv inside the sandbox and returns its combined output. A
// failure is wrapped with the command and the tail of its output.
func (s *Sandbox) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return s.core.Exec(ctx, argv...)
}

// Run is Exec for test bodies: it fails t on error and returns the trimmed
// output. It is bound to t.Context().
func (s *Sandbox) Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := s.Exec(t.Context(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// WaitUnit polls until unit's ActiveState is state ("active", "inactive",
// "failed", ...). It returns early with an error when the unit fails while
// another state is wanted, and wraps ctx.Err() with the last state seen.
func (s *Sandbox) WaitUnit(ctx context.Context, unit, state string) error {
	return s.core.WaitUnit(ctx, unit, state)
}

// Journal returns the sandbox's journal of this boot (of unit when not
// empty), for failure messages.
func (s *Sandbox) Journal(ctx context.Context, unit string) string {
	return s.core.Journal(ctx, unit)
}
