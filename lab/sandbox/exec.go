package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command returns a command that runs argv inside the sandbox: in all its
// namespaces, with its root and a minimal environment (PATH, HOME, LANG)
// that callers may extend through Cmd.Env. It is killed with ctx. When the
// sandbox is not running, the command's Start returns ErrNotRunning.
func (s *Sandbox) Command(ctx context.Context, argv ...string) *exec.Cmd {
	inst, err := s.running()
	if err != nil {
		cmd := exec.CommandContext(ctx, "false")
		cmd.Err = err
		return cmd
	}
	return s.command(ctx, inst, argv...)
}

func (s *Sandbox) command(ctx context.Context, inst *instance, argv ...string) *exec.Cmd {
	args := append([]string{"--target", strconv.Itoa(inst.pid), "--all", "--root", "--wd", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{"PATH=" + hostPath, "HOME=/root", "LANG=C.UTF-8"}
	// nsenter forks to enter the PID namespace. Cancellation kills the
	// command and its descendants (its process group) but not nsenter
	// itself, which must reap the command: a zombie handed to the host's
	// init would hold up the sandbox's shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroupExceptLeader(cmd.Process.Pid) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Exec runs argv inside the sandbox and returns its combined output. A
// failure is wrapped with the command and the tail of its output.
func (s *Sandbox) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := s.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("sandbox: %s in %s: %w: %s", strings.Join(argv, " "), s.opts.Name, err, tail(out, 2048))
	}
	return out, nil
}

// WaitUnit polls until unit's ActiveState is state ("active", "inactive",
// "failed", ...). It returns early with an error when the unit fails while
// another state is wanted, and wraps ctx.Err() with the last state seen.
func (s *Sandbox) WaitUnit(ctx context.Context, unit, state string) error {
	last := ""
	for {
		out, err := s.Exec(ctx, "systemctl", "show", "--property=ActiveState", "--value", unit)
		if err == nil {
			last = strings.TrimSpace(string(out))
			if last == state {
				return nil
			}
			if last == "failed" {
				return fmt.Errorf("sandbox: unit %s failed while waiting for %q", unit, state)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox: unit %s is %q, want %q: %w", unit, last, state, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Journal returns the sandbox's journal of this boot (of unit when not
// empty), for failure messages.
func (s *Sandbox) Journal(ctx context.Context, unit string) string {
	argv := []string{"journalctl", "--boot", "--no-pager", "--quiet"}
	if unit != "" {
		argv = append(argv, "--unit", unit)
	}
	out, err := s.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("journal unavailable: %v: %s", err, tail(out, 512))
	}
	return string(out)
}

// killGroupExceptLeader sends SIGKILL to every process of process group
// pgid except its leader.
func killGroupExceptLeader(pgid int) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone already
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) >= 3 && fields[2] == strconv.Itoa(pgid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return nil
}
