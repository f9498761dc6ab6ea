package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Files of a lab directory kept by Up and Serve.
const (
	pidFile = "lab.pid" // PID of the serving process
	envFile = "env"     // the export line; written once the lab is ready
	logFile = "lab.log" // the serving process's output
)

// DefaultDir is where `lab up` keeps a lab unless told otherwise.
const DefaultDir = "/var/lib/panther-lab"

// serveArg is the hidden command Up starts in the background.
const serveArg = "serve"

// UpOptions configure Up.
type UpOptions struct {
	// Lab configures the lab; Lab.Dir default DefaultDir.
	Lab Options
	// Out receives the export line and hints. Default os.Stdout.
	Out io.Writer
	// StartTimeout bounds the wait for the background lab. Default 3m.
	StartTimeout time.Duration
}

// Up starts a lab in the background (this executable, run as
// `<exe> serve --dir DIR`, detached, logging to DIR/lab.log) and returns
// once it is ready, after printing the line that points pantherctl at it.
// A lab already running in the directory is reused.
func Up(ctx context.Context, opts UpOptions) error {
	if opts.Lab.Dir == "" {
		opts.Lab.Dir = DefaultDir
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	dir, err := filepath.Abs(opts.Lab.Dir)
	if err != nil {
		return err
	}
	if pid := runningPID(dir); pid > 0 {
		line, err := os.ReadFile(filepath.Join(dir, envFile))
		if err == nil {
			fmt.Fprintf(opts.Out, "The lab is already running in %s (pid %d). Point pantherctl at it with:\n\n%s\n", dir, pid, line)
			return nil
		}
		return fmt.Errorf("lab: a lab is starting or stuck in %s (pid %d): wait, or run 'pantherctl lab down'", dir, pid)
	}
	if isLabDir(dir) {
		// A lab that died without 'down': start from scratch.
		if err := Remove(dir); err != nil {
			return err
		}
	}
	if err := claimDir(dir); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{serveArg, "--dir", dir}
	if opts.Lab.Agent != "" {
		args = append(args, "--agent", opts.Lab.Agent)
	}
	if opts.Lab.Ctl != "" {
		args = append(args, "--pantherctl", opts.Lab.Ctl)
	}
	if opts.Lab.FlakeSource != "" {
		args = append(args, "--flake", opts.Lab.FlakeSource)
	}
	// Not CommandContext: the lab must outlive this process.
	cmd := exec.Command(self, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cleanEnv(os.Environ()), "TS_NO_LOGS_NO_SUPPORT=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Fprintf(opts.Out, "Starting the lab in %s (log: %s) ...\n", dir, filepath.Join(dir, logFile))
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("lab: start %s: %w", self, err)
	}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends with the process or with ours
	deadline := time.After(opts.StartTimeout)
	for {
		line, err := os.ReadFile(filepath.Join(dir, envFile))
		if err == nil {
			fmt.Fprintf(opts.Out, "The lab is up (%v): hosts %s; flake %s.\n", time.Since(begin).Round(100*time.Millisecond),
				strings.Join(hostsOf(opts.Lab), ", "), filepath.Join(dir, "flake"))
			fmt.Fprintf(opts.Out, "Point pantherctl at it with:\n\n%s\n\n", strings.TrimSpace(string(line)))
			fmt.Fprintf(opts.Out, "then try: pantherctl status --all; pantherctl deploy alpha --dry-run; edit %s (variants good, v2, broken, cut-network) and deploy.\nStop it with: pantherctl lab down\n",
				filepath.Join(dir, "flake", "hosts.json"))
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, logFile))
			_ = os.Remove(filepath.Join(dir, pidFile))
			return fmt.Errorf("lab: the lab did not start (%v); the end of %s:\n%s", err, filepath.Join(dir, logFile), tailLines(string(log), 30))
		case <-deadline:
			return fmt.Errorf("lab: not ready after %v; see %s or run 'pantherctl lab down'", opts.StartTimeout, filepath.Join(dir, logFile))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func hostsOf(o Options) []string {
	if len(o.Hosts) > 0 {
		return o.Hosts
	}
	return DefaultHosts()
}

// Serve runs a lab in the foreground until ctx ends, then stops it. It
// writes the export line to DIR/env once the lab is ready. It is what Up
// runs in the background.
func Serve(ctx context.Context, opts Options) error {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "panther-lab", Level: hclog.Info, Output: os.Stderr})
	}
	l, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			opts.Logger.Error("stopping the lab", "error", err)
		}
		_ = os.Remove(filepath.Join(l.Dir, envFile))
		opts.Logger.Info("lab stopped")
	}()
	tmp := filepath.Join(l.Dir, envFile+".tmp")
	if err := os.WriteFile(tmp, []byte(l.ExportLine()+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(l.Dir, envFile)); err != nil {
		return err
	}
	opts.Logger.Info("lab ready", "control", l.Net.ControlURL, "dir", l.Dir)
	<-ctx.Done()
	return nil
}

// DownOptions configure Down.
type DownOptions struct {
	// Dir is the lab directory. Default DefaultDir.
	Dir string
	// Out receives what was done. Default os.Stdout.
	Out io.Writer
	// StopTimeout bounds the clean stop before the lab is killed. Default 60s.
	StopTimeout time.Duration
}

// Down stops the lab running in a directory and removes everything it
// created: its sandboxes (with their mounts, cgroups and veth pairs) and the
// directory. It also sweeps what a killed lab left behind.
func Down(ctx context.Context, opts DownOptions) error {
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 60 * time.Second
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	if pid := runningPID(dir); pid > 0 {
		fmt.Fprintf(opts.Out, "Stopping the lab (pid %d) ...\n", pid)
		if err := stopProcess(ctx, pid, opts.StopTimeout); err != nil {
			return err
		}
	} else if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(opts.Out, "No lab in %s.\n", dir)
		return Remove(dir) // still sweep a killed lab's leftovers
	}
	if err := Remove(dir); err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "Removed the lab: %s, its hosts' sandboxes, cgroups and network links.\n", dir)
	return nil
}

// Env returns the export line of the lab running in dir.
func Env(dir string) (string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if runningPID(dir) == 0 {
		return "", fmt.Errorf("lab: no lab running in %s: start one with 'pantherctl lab up'", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, envFile))
	if err != nil {
		return "", fmt.Errorf("lab: the lab in %s is not ready yet", dir)
	}
	return strings.TrimSpace(string(b)), nil
}

// runningPID returns the PID of the lab serving dir, or 0 when none runs.
func runningPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	// The PID may have been reused by another program.
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || args[1] != serveArg {
		return 0
	}
	return pid
}

// stopProcess sends SIGTERM to pid and waits for it to go, killing it after
// timeout.
func stopProcess(ctx context.Context, pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: stop pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	killed := false
	for !gone(pid) {
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("lab: pid %d survived SIGKILL", pid)
			}
			// Its sandboxes die with it (Pdeathsig); Remove sweeps the rest.
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(10*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// gone reports whether pid has exited (a zombie counts as exited).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}
