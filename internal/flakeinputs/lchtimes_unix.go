//go:build unix

package flakeinputs

import (
	"time"

	"golang.org/x/sys/unix"
)

// lchtimes sets the times of a symlink itself.
func lchtimes(path string, t time.Time) {
	ts := unix.NsecToTimespec(t.UnixNano())
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
