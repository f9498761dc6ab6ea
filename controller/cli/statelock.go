package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stateLockName is the lock file in pantherctl's --state-dir. Two runs on
// one tailnet node state fight over the node's identity and break each
// other's streams, so the second run refuses at once instead.
const stateLockName = "pantherctl.lock"

// lockHolder is what the run holding the lock writes into the lock file,
// for the run it turns away.
type lockHolder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// stateLock is a held lock on a state dir; the kernel drops it when the
// process ends, however it ends.
type stateLock struct{ f *os.File }

// lockStateDir takes a non-blocking exclusive flock on dir's lock file,
// creating dir if needed, and records who holds it. When another process
// holds it, the error (exit 1) names that process and what to do.
func lockStateDir(dir, command string, now time.Time) (*stateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, exitf(ExitError, "state dir: %v", err)
	}
	path := filepath.Join(dir, stateLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, exitf(ExitError, "state dir: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, exitf(ExitError, "locking %s: %v", path, err)
		}
		return nil, exitf(ExitError, "%s is in use by %s: wait for it to finish, or pass another --state-dir", dir, describeHolder(b))
	}
	b, _ := json.Marshal(lockHolder{PID: os.Getpid(), Command: command, Since: now.UTC().Truncate(time.Second)})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(b, '\n'), 0)
	}
	return &stateLock{f: f}, nil
}

// describeHolder turns the lock file's content into "pantherctl pid 12
// (pantherctl deploy alpha) since 2026-01-02T15:04:05Z".
func describeHolder(b []byte) string {
	var h lockHolder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return "another pantherctl"
	}
	s := fmt.Sprintf("pantherctl pid %d", h.PID)
	if c := strings.Join(strings.Fields(h.Command), " "); c != "" {
		if len(c) > 120 {
			c = c[:120] + "…"
		}
		s += " (" + c + ")"
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// unlock releases the lock; the file stays (removing it would let a third
// run lock a new file while a second still holds the old one).
func (l *stateLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	l.f.Close()
	l.f = nil
}
