package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// A reboot or shutdown started inside the sandbox (`systemctl reboot`, an
// activation script that reboots, a watchdog) ends the way it ends on a
// machine: systemd stops every unit, then calls reboot(2). In a PID
// namespace that call ends the namespace's init, systemd itself, with
// SIGHUP for a reboot and SIGINT for a power-off or halt. The sandbox
// notices: after a reboot it boots again on the same state directory, as
// Reboot does; after a power-off it stays down (ErrNotRunning) until Reboot
// or Crash.

// ErrPoweredOff is wrapped by the error Boots reports once the sandbox
// powered itself off (or its systemd died of anything but a reboot).
var ErrPoweredOff = errors.New("sandbox powered off from inside")

// watch waits for inst's systemd to exit and, when nothing on this side
// ended it (Stop, Reboot, Crash), takes it for a reboot or power-off from
// inside.
func (s *Sandbox) watch(inst *instance) {
	<-inst.done
	s.mu.Lock()
	if s.cur != inst {
		// Torn down on purpose (Stop, Reboot, Crash), or a failed boot.
		s.mu.Unlock()
		return
	}
	reboot := exitedForReboot(inst.err)
	s.log.Debug("systemd exited on its own", "status", inst.err, "reboot", reboot)
	fmt.Fprintf(inst.log, "=== systemd exited on its own (%v) at %s\n", inst.err, time.Now().Format(time.RFC3339Nano))
	if err := s.teardown(inst, true); err != nil {
		s.log.Warn("cleaning up after a shutdown from inside", "error", err)
	}
	if !reboot || s.stopped {
		s.lastErr = fmt.Errorf("%w: systemd exited: %v", ErrPoweredOff, inst.err)
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	err := s.boot(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.stopped && s.cur != nil {
		// Stop ran while this boot was under way: honour it.
		err = s.teardown(s.cur, false)
	}
	s.lastErr = err
	if err != nil {
		s.log.Error("boot after a reboot from inside", "error", err)
	}
	s.notifyLocked()
}

// exitedForReboot tells a reboot from the exit status of a namespace's
// init: the kernel ends it with SIGHUP for reboot(2)'s restart commands.
func exitedForReboot(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGHUP
}

// notifyLocked wakes WaitBoot's callers. s.mu must be held.
func (s *Sandbox) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Boots returns how many times the sandbox has booted (the first boot, each
// Reboot and Crash, and each reboot from inside).
func (s *Sandbox) Boots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.boots
}

// WaitBoot waits until the sandbox has booted more than after times (see
// Boots) and is running: after a reboot started inside, until systemd is
// back up. It fails when the sandbox is down after a power-off from inside
// or a failed boot after a reboot from inside, or when ctx ends.
func (s *Sandbox) WaitBoot(ctx context.Context, after int) error {
	for {
		s.mu.Lock()
		boots, cur, changed, lastErr := s.boots, s.cur, s.changed, s.lastErr
		s.mu.Unlock()
		if boots > after && cur != nil {
			if _, err := s.running(); err == nil {
				return nil
			}
		}
		if cur == nil && lastErr != nil {
			return fmt.Errorf("sandbox %s: %w", s.opts.Name, lastErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: not booted again (boots %d): %w", s.opts.Name, boots, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
