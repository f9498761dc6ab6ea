package sandbox

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

//go:embed init.sh
var initScript string

// ErrNotRunning is returned by calls that need a booted sandbox after Stop
// or while a boot failed.
var ErrNotRunning = errors.New("sandbox is not running")

// ErrNoNetNS is returned by CutNetwork and RestoreNetwork of a sandbox
// booted without Options.NetNS.
var ErrNoNetNS = errors.New("sandbox has no network namespace (Options.NetNS)")

// sigPowerOff is SIGRTMIN+4 as systemd(1) counts it (glibc's SIGRTMIN is 34):
// it starts poweroff.target, the clean shutdown of a container.
const sigPowerOff = syscall.Signal(38)

// hostPath is the PATH for the init step and Exec'd commands.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configures Boot.
type Options struct {
	// Name is the hostname inside (UTS namespace) and part of the cgroup
	// name. Default "sandbox".
	Name string
	// StateDir holds the overlay's upper and work directories and the
	// console log; it survives Reboot, so it is the sandbox's disk. It is
	// created if missing and never removed by this package. Required.
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
	// false: the sandbox models NixOS, where PID 1 gives a unit a PATH with
	// only systemd's tools (SystemdBinDir), and a unit standing for a NixOS
	// service sets Environment=PATH=<ServicePath> itself.
	HostDefaultPath bool
	// ServicePackages are Debian packages whose commands are linked into
	// ServiceBinDir besides coreutils, findutils, grep and sed: what a
	// NixOS module adds to its service's `path` (the panther-agent module
	// adds nix, systemd and git: "nix-bin", "git"). Default none.
	ServicePackages []string
	// BootTimeout bounds each boot until systemd reports running or
	// degraded. Default 30s.
	BootTimeout time.Duration
	// StopTimeout bounds a clean shutdown before the sandbox is killed.
	// Default 10s.
	StopTimeout time.Duration
	// Owner names what boots the sandbox: it starts the name of the
	// sandbox's cgroup ("<Owner>-<pid>-<Name>-<random>", which RemoveStale
	// matches) and is the value of $container inside. Default
	// "panther-sandbox".
	Owner string
	// Logger receives one line per boot and stop. Default: no logging.
	Logger hclog.Logger
}

// DefaultOwner is the default Options.Owner.
const DefaultOwner = "panther-sandbox"

// Sandbox is a systemd booted as PID 1 of its own namespaces. Its methods
// are safe for concurrent use; Reboot and Crash change PID, Path and
// BusAddress.
type Sandbox struct {
	opts    Options
	log     hclog.Logger
	systemd string // manager binary
	upper   string // overlay upper dir (persistent)
	work    string // overlay work dir
	merged  string // mount point of the overlay inside the private namespace
	logPath string // console output of every boot
	net     *network

	mu      sync.Mutex
	cur     *instance // nil while stopped
	boots   int
	stopped bool          // Stop was called: a reboot from inside does not boot again
	changed chan struct{} // closed and replaced whenever a boot from inside ends (see Boots)
	lastErr error         // why the last boot from inside failed or the sandbox went down
}

// instance is one boot: the init process that became systemd.
type instance struct {
	cmd    *exec.Cmd
	pid    int
	cgroup string
	log    *os.File
	done   chan struct{} // closed when the process has exited
	err    error         // exit status, valid after done
}

// Boot starts a sandbox and waits until systemd reports running or
// degraded, bounded by ctx and Options.BootTimeout. A missing prerequisite
// is reported as an error wrapping ErrMissing (see Check). On error nothing
// is left running; the state directory stays.
func Boot(ctx context.Context, opts Options) (*Sandbox, error) {
	systemd, err := prerequisites(opts.NetNS)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "sandbox"
	}
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("sandbox: name %q is not a valid hostname label", opts.Name)
	}
	if opts.StateDir == "" {
		return nil, fmt.Errorf("sandbox %s: Options.StateDir is required", opts.Name)
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 30 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner
	}
	if !validName.MatchString(opts.Owner) {
		return nil, fmt.Errorf("sandbox: owner %q is not a valid name", opts.Owner)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Sandbox{
		opts:    opts,
		log:     opts.Logger.Named("sandbox").With("sandbox", opts.Name),
		systemd: systemd,
		upper:   filepath.Join(opts.StateDir, "upper"),
		work:    filepath.Join(opts.StateDir, "work"),
		merged:  filepath.Join(opts.StateDir, "merged"),
		logPath: filepath.Join(opts.StateDir, "console.log"),
		changed: make(chan struct{}),
	}
	for _, d := range []string{s.upper, s.work, s.merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", opts.Name, err)
		}
	}
	if opts.NetNS {
		if s.net, err = allocNetwork(); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", opts.Name, err)
		}
	}
	if err := (upperLayer{dir: s.upper}).prepare(opts, s.net); err != nil {
		return nil, fmt.Errorf("sandbox %s: prepare state: %w", opts.Name, err)
	}
	if err := s.boot(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// validName matches a hostname label of at most 32 characters.
var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// boot boots once more on the state directory.
func (s *Sandbox) boot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.BootTimeout)
	defer cancel()
	begin := time.Now()
	state, err := s.start(ctx)
	if err != nil {
		return fmt.Errorf("sandbox: boot %s: %w", s.opts.Name, err)
	}
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	s.log.Debug("booted", "elapsed", time.Since(begin).Round(time.Millisecond), "pid", s.PID(), "state", state)
	return nil
}

// start launches the init step in fresh namespaces and waits for systemd.
func (s *Sandbox) start(ctx context.Context) (state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return "", errors.New("already running")
	}
	s.boots++
	inst := &instance{done: make(chan struct{})}
	// Whatever fails below, leave nothing running.
	defer func() {
		if err != nil {
			s.teardown(inst, true)
		}
	}()

	if inst.cgroup, err = newCgroup(s.opts.Owner, s.opts.Name); err != nil {
		return "", err
	}
	cgfd, err := os.Open(inst.cgroup)
	if err != nil {
		return "", fmt.Errorf("open cgroup: %w", err)
	}
	defer cgfd.Close()
	if inst.log, err = os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return "", fmt.Errorf("open console log: %w", err)
	}
	fmt.Fprintf(inst.log, "=== boot %d at %s\n", s.boots, time.Now().Format(time.RFC3339Nano))
	goR, goW, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("pipe: %w", err)
	}
	defer goW.Close()

	netns := "0"
	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWCGROUP)
	if s.net != nil {
		netns = "1"
		flags |= syscall.CLONE_NEWNET
	}
	cmd := exec.Command("/bin/sh", "-c", initScript, s.opts.Owner+"-init", s.merged, s.upper, s.work, s.systemd, netns)
	cmd.Env = []string{"PATH=" + hostPath, "container=" + s.opts.Owner}
	cmd.Stdout, cmd.Stderr = inst.log, inst.log
	cmd.ExtraFiles = []*os.File{goR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  flags,
		Setsid:      true,
		Pdeathsig:   syscall.SIGKILL, // the sandbox dies with the process that booted it
		UseCgroupFD: true,
		CgroupFD:    int(cgfd.Fd()),
	}
	// Pdeathsig fires when the thread that forked the child exits, and the
	// Go runtime ends threads that a goroutine locked and left. So the
	// child is started and waited for by a goroutine pinned to its thread
	// for the child's whole life. The goroutine is owned by inst: it ends
	// when the sandbox's PID 1 exits, which teardown guarantees.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		inst.err = cmd.Wait()
		close(inst.done)
	}()
	err = <-started
	goR.Close()
	if err != nil {
		return "", fmt.Errorf("start init: %w", err)
	}
	inst.cmd, inst.pid = cmd, cmd.Process.Pid
	s.cur = inst
	go s.watch(inst)

	line := "go\n"
	if s.net != nil {
		if err := s.net.attach(ctx, inst.pid); err != nil {
			return "", err
		}
		line = fmt.Sprintf("net %s %s\n", s.net.guestPrefix(), s.net.host)
	}
	if _, err := goW.WriteString(line); err != nil {
		return "", fmt.Errorf("release init: %w (console: %s)", err, s.consoleTail())
	}
	return s.waitBooted(ctx, inst)
}

// waitBooted waits for systemd's private socket, then for the boot to end.
func (s *Sandbox) waitBooted(ctx context.Context, inst *instance) (string, error) {
	private := filepath.Join("/proc", strconv.Itoa(inst.pid), "root/run/systemd/private")
	for {
		if _, err := os.Stat(private); err == nil {
			break
		}
		select {
		case <-inst.done:
			return "", fmt.Errorf("init exited: %v (console: %s)", inst.err, s.consoleTail())
		case <-ctx.Done():
			return "", fmt.Errorf("systemd did not come up: %w (console: %s)", ctx.Err(), s.consoleTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
	out, err := s.command(ctx, inst, "systemctl", "is-system-running", "--wait").CombinedOutput()
	state := strings.TrimSpace(string(out))
	// is-system-running exits non-zero for degraded; the state word is what
	// matters.
	switch state {
	case "running", "degraded":
		return state, nil
	}
	failed, _ := s.command(ctx, inst, "systemctl", "--failed", "--no-legend", "--plain").CombinedOutput()
	return "", fmt.Errorf("system state %q (%v), failed units: %s", state, err, strings.TrimSpace(string(failed)))
}

// consoleTail returns the end of the console log for error messages.
func (s *Sandbox) consoleTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	return tail(b, 1024)
}

// tail returns at most the last n bytes of b, trimmed.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop shuts the sandbox down cleanly (killing it after StopTimeout) and
// removes its cgroup and veth pair. Mounts and processes die with its
// namespaces. The state directory is left alone. Stop is idempotent.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if err := s.teardown(s.cur, false); err != nil {
		return fmt.Errorf("sandbox: stop %s: %w", s.opts.Name, err)
	}
	return nil
}

// Reboot shuts the sandbox down cleanly and boots it again on the same state
// directory: files on disk survive, /run and every process start afresh.
func (s *Sandbox) Reboot(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = false
	err := s.teardown(s.cur, false)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sandbox: reboot %s: %w", s.opts.Name, err)
	}
	return s.boot(ctx)
}

// Crash kills every process of the sandbox at once, like a power cut, and
// boots it again on the same state directory. Data already written to files
// survives (there is no page cache to lose).
func (s *Sandbox) Crash(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = false
	err := s.teardown(s.cur, true)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sandbox: crash %s: %w", s.opts.Name, err)
	}
	return s.boot(ctx)
}

// teardown ends inst and cleans up after it. s.mu must be held.
func (s *Sandbox) teardown(inst *instance, kill bool) error {
	if inst == nil {
		return nil
	}
	if s.cur == inst {
		s.cur = nil
	}
	var errs []error
	if inst.cmd != nil {
		if !kill {
			_ = inst.cmd.Process.Signal(sigPowerOff)
			select {
			case <-inst.done:
			case <-time.After(s.opts.StopTimeout):
				errs = append(errs, fmt.Errorf("no clean shutdown within %v, killed", s.opts.StopTimeout))
			}
		}
		// Killing PID 1 of a PID namespace kills every process in it.
		_ = inst.cmd.Process.Kill()
		<-inst.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.net != nil {
		if err := s.net.detach(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroup(inst.cgroup, 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	if inst.log != nil {
		inst.log.Close()
	}
	return errors.Join(errs...)
}

// running returns the current boot or ErrNotRunning.
func (s *Sandbox) running() (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil, ErrNotRunning
	}
	select {
	case <-s.cur.done:
		return nil, fmt.Errorf("%w: systemd exited: %v", ErrNotRunning, s.cur.err)
	default:
	}
	return s.cur, nil
}

// Name returns the sandbox's hostname.
func (s *Sandbox) Name() string { return s.opts.Name }

// StateDir returns the directory holding the sandbox's disk and console log.
func (s *Sandbox) StateDir() string { return s.opts.StateDir }

// PID returns the host PID of the sandbox's systemd, or 0 when stopped.
func (s *Sandbox) PID() int {
	inst, err := s.running()
	if err != nil {
		return 0
	}
	return inst.pid
}

// Path returns the host path of p inside the running sandbox, through
// /proc/<pid>/root. It changes with every boot.
func (s *Sandbox) Path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(s.PID()), "root", p)
}

// BusAddress returns the D-Bus address of the sandbox's system bus as seen
// from the host, for godbus/go-systemd dialers. It changes with every boot.
func (s *Sandbox) BusAddress() string {
	return "unix:path=" + s.Path("/run/dbus/system_bus_socket")
}

// IP returns the sandbox's address on the veth link (NetNS only; the zero
// Addr otherwise). It stays the same across reboots.
func (s *Sandbox) IP() netip.Addr {
	if s.net == nil {
		return netip.Addr{}
	}
	return s.net.guest
}

// HostIP returns the host's address on the veth link, the sandbox's default
// gateway (NetNS only; the zero Addr otherwise). The sandbox also reaches
// the host's other addresses through it.
func (s *Sandbox) HostIP() netip.Addr {
	if s.net == nil {
		return netip.Addr{}
	}
	return s.net.host
}

// CutNetwork takes the host end of the veth link down: the sandbox is cut
// off, like a host losing its network. Needs NetNS.
func (s *Sandbox) CutNetwork(ctx context.Context) error {
	return s.setLink(ctx, "down")
}

// RestoreNetwork brings the veth link back up after CutNetwork.
func (s *Sandbox) RestoreNetwork(ctx context.Context) error {
	return s.setLink(ctx, "up")
}

func (s *Sandbox) setLink(ctx context.Context, state string) error {
	if s.net == nil {
		return fmt.Errorf("sandbox %s: %w", s.opts.Name, ErrNoNetNS)
	}
	if _, err := s.running(); err != nil {
		return fmt.Errorf("sandbox %s: %w", s.opts.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := runIP(ctx, "link", "set", s.net.hostIf, state); err != nil {
		return fmt.Errorf("sandbox %s: %w", s.opts.Name, err)
	}
	return nil
}
