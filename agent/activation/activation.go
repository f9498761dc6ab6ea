// Package activation runs a NixOS system's switch-to-configuration: the
// dry-activate directly (its output streamed), the real switch in a
// transient systemd unit started with systemd-run, so that it survives the
// agent being restarted by the switch itself. The unit appends its output to
// the deployment log and writes its exit code to a file when it ends; the
// agent reads that file even after its own restart.
package activation

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Runner runs a command, passing each output line (stdout and stderr) to
// onLine, and returns its exit code. It is the OS boundary of this package.
type Runner interface {
	Run(ctx context.Context, argv []string, onLine func(string)) (exitCode int, err error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// killWaitDelay is how long Run waits for the output of a command killed
// because its context ended.
const killWaitDelay = 2 * time.Second

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, argv []string, onLine func(string)) (int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// When ctx ends, kill the command's whole process group: its children
	// (a dry-activate's scripts) inherit the output pipe, and killing only
	// the command left Wait waiting for them, so a deployment whose
	// controller went away stayed busy until they ended. WaitDelay covers
	// children that left the group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killWaitDelay
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	wg.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// Options configure an Activation.
type Options struct {
	SystemdRun string // default "systemd-run" (from PATH)
	Systemctl  string // default "systemctl" (from PATH)
	Shell      string // wrapper shell; default "/bin/sh"
}

// Activation implements the deploy engine's Activator.
type Activation struct {
	opts Options
	run  Runner
	log  hclog.Logger
}

// New returns an Activation using run for commands.
func New(opts Options, run Runner, log hclog.Logger) *Activation {
	if opts.SystemdRun == "" {
		opts.SystemdRun = "systemd-run"
	}
	if opts.Systemctl == "" {
		opts.Systemctl = "systemctl"
	}
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Activation{opts: opts, run: run, log: log.Named("activation")}
}

// ExitError is a command that exited non-zero.
type ExitError struct {
	Argv []string
	Code int
	Tail string
}

// ExitCode is the command's exit code (the engine judges
// switch-to-configuration's codes).
func (e *ExitError) ExitCode() int { return e.Code }

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited %d", strings.Join(e.Argv, " "), e.Code)
	if e.Tail != "" {
		msg += ": " + e.Tail
	}
	return msg
}

// DryActivate runs "<toplevel>/bin/switch-to-configuration dry-activate".
func (a *Activation) DryActivate(ctx context.Context, toplevel string, onLine func(string)) error {
	argv := []string{toplevel + "/bin/switch-to-configuration", "dry-activate"}
	var last []string
	a.log.Debug("running", "argv", argv)
	code, err := a.run.Run(ctx, argv, func(l string) {
		last = append(last, l)
		if len(last) > 3 {
			last = last[1:]
		}
		onLine(l)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	if code != 0 {
		return &ExitError{Argv: argv, Code: code, Tail: strings.Join(last, " / ")}
	}
	return nil
}

// CheckSwitch runs "<toplevel>/bin/switch-to-configuration check": the
// system's switch inhibitors and pre-switch checks. An older
// switch-to-configuration without "check" exits 1 with its usage text.
func (a *Activation) CheckSwitch(ctx context.Context, toplevel string, onLine func(string)) error {
	argv := []string{toplevel + "/bin/switch-to-configuration", "check"}
	var last []string
	a.log.Debug("running", "argv", argv)
	code, err := a.run.Run(ctx, argv, func(l string) {
		last = append(last, l)
		if len(last) > 3 {
			last = last[1:]
		}
		onLine(l)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	if code != 0 {
		return &ExitError{Argv: argv, Code: code, Tail: strings.Join(last, " / ")}
	}
	return nil
}

// wrapper runs the switch and records its exit code atomically.
const wrapper = `"$0" "$1"; rc=$?; printf '%s\n' "$rc" > "$2.tmp" && mv "$2.tmp" "$2"; exit $rc`

// SwitchArgv is the systemd-run command line StartSwitch uses.
func (a *Activation) SwitchArgv(unit, toplevel, mode, logPath, exitPath string) []string {
	return []string{
		a.opts.SystemdRun,
		"--unit=" + unit,
		"--collect",
		"--description=panther: switch-to-configuration " + mode + " " + toplevel,
		"--property=StandardOutput=append:" + logPath,
		"--property=StandardError=append:" + logPath,
		"--",
		a.opts.Shell, "-c", wrapper,
		toplevel + "/bin/switch-to-configuration", mode, exitPath,
	}
}

// StartSwitch starts the switch in a transient unit and returns once the
// unit is running.
func (a *Activation) StartSwitch(ctx context.Context, unit, toplevel, mode, logPath, exitPath string) error {
	switch mode {
	case "switch", "boot", "test":
	default:
		return fmt.Errorf("unknown switch mode %q", mode)
	}
	argv := a.SwitchArgv(unit, toplevel, mode, logPath, exitPath)
	a.log.Info("starting switch unit", "unit", unit, "mode", mode, "toplevel", toplevel)
	var out []string
	code, err := a.run.Run(ctx, argv, func(l string) { out = append(out, l) })
	if err != nil {
		return fmt.Errorf("systemd-run: %w", err)
	}
	if code != 0 {
		return &ExitError{Argv: argv[:2], Code: code, Tail: strings.Join(out, " / ")}
	}
	return nil
}

// UnitActive reports whether unit is loaded and not yet finished.
func (a *Activation) UnitActive(ctx context.Context, unit string) (bool, error) {
	var out []string
	code, err := a.run.Run(ctx, []string{a.opts.Systemctl, "show", "--property=ActiveState", "--value", unit}, func(l string) { out = append(out, l) })
	if err != nil {
		return false, err
	}
	if code != 0 {
		return false, fmt.Errorf("systemctl show %s exited %d", unit, code)
	}
	state := ""
	if len(out) > 0 {
		state = strings.TrimSpace(out[0])
	}
	switch state {
	case "active", "activating", "deactivating", "reloading", "refreshing":
		return true, nil
	}
	return false, nil
}
