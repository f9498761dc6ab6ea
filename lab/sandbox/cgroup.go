package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup2Root returns where the host mounts the root of its cgroup2
// hierarchy: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(postFields) < 1 || postFields[0] != "cgroup2" || fields[3] != "/" {
			continue
		}
		return unescapeMountPath(fields[4]), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", errors.New("no cgroup2 hierarchy mounted on the host")
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sweepStaleCgroups removes the cgroups of owner's sandboxes whose booting
// process is gone (it was killed before it could stop them; Pdeathsig took
// the sandboxes with it). Cgroup names are "<owner>-<pid>-<name>-<random>".
func sweepStaleCgroups(root, owner string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("list cgroups: %w", err)
	}
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), owner+"-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue // another owner whose name starts with ours
		}
		if processGone(pid) {
			if err := removeCgroup(filepath.Join(root, e.Name()), 5*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// processGone reports whether the process has exited; a zombie nobody has
// reaped yet counts as exited.
func processGone(pid string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// RemoveStale removes what sandboxes of owner (see Options.Owner) left
// behind when the process that booted them died without stopping them:
// their cgroups. Their processes, mounts and veth pairs die with their
// namespaces. Sandboxes of live processes are not touched.
func RemoveStale(owner string) error {
	if owner == "" {
		owner = DefaultOwner
	}
	root, err := cgroup2Root()
	if err != nil {
		return err
	}
	return sweepStaleCgroups(root, owner)
}

// newCgroup creates an empty cgroup for one boot, directly below the root of
// the cgroup2 hierarchy so that the no-internal-processes rule never applies
// to its parent. The sandbox's cgroup namespace is rooted at it.
func newCgroup(owner, name string) (string, error) {
	root, err := cgroup2Root()
	if err != nil {
		return "", err
	}
	_ = sweepStaleCgroups(root, owner) // best effort; a leftover only costs a directory
	dir := filepath.Join(root, fmt.Sprintf("%s-%d-%s-%s", owner, os.Getpid(), name, randomHex(4)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup: %w", err)
	}
	return dir, nil
}

// removeCgroup kills whatever is left in dir and removes it with every
// cgroup systemd created below it.
func removeCgroup(dir string, timeout time.Duration) error {
	if dir == "" {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		err := rmdirTree(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		// cgroup.kill (Linux 5.14+) ends stragglers of the whole subtree.
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		time.Sleep(20 * time.Millisecond)
	}
}

// rmdirTree removes a cgroup directory tree deepest first. cgroupfs refuses
// RemoveAll (its control files cannot be unlinked), so only directories are
// removed.
func rmdirTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("rmdir %s: %w", d, err)
		}
	}
	return nil
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}
