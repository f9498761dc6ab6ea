//go:build unix

package signing

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkKeyOwnership refuses a private key that someone other than the
// current user (or root) owns, or that sits in a directory another user
// could write to (and so replace the key with theirs). A sticky directory
// (such as /tmp) is writable by all but lets only the owner rename or
// remove the file, so it is accepted.
func checkKeyOwnership(path string, st fs.FileInfo) error {
	uid := uint32(os.Geteuid())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != uid && sys.Uid != 0 {
		return fmt.Errorf("private key %s is owned by uid %d, not by you (uid %d) or root; run chown %d %s",
			path, sys.Uid, uid, uid, path)
	}
	dir := filepath.Dir(path)
	dst, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("read private key: %w", err)
	}
	if sys, ok := dst.Sys().(*syscall.Stat_t); ok && sys.Uid != uid && sys.Uid != 0 && dst.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("private key directory %s is owned by uid %d, not by you (uid %d) or root: its owner can replace the key; move the key to a directory of yours",
			dir, sys.Uid, uid)
	}
	if dst.Mode().Perm()&0o022 != 0 && dst.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("private key directory %s is writable by other users (mode %v), who could replace the key; run chmod go-w %s",
			dir, dst.Mode().Perm(), dir)
	}
	return nil
}
