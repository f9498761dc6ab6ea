package cli

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStateDirLockedByOneRun: a second lock on a state dir fails at once
// with exit 1, naming the holder (pid, command, since when) and what to do;
// once the first lets go, the next run gets it.
// Not parallel: a test that forks while this one unlocks would hold the
// lock file's description until its child execs.
func TestStateDirLockedByOneRun(t *testing.T) {
	dir := t.TempDir()
	since := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	first, err := lockStateDir(dir, "pantherctl deploy alpha --yes", since)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = lockStateDir(dir, "pantherctl status alpha", time.Now())
	if err == nil {
		t.Fatal("second lock on one state dir succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second lock took %v: it must not wait", d)
	}
	ee, ok := err.(*exitError)
	if !ok || ee.code != ExitError {
		t.Fatalf("error %v (%T), want exit %d", err, err, ExitError)
	}
	for _, s := range []string{dir, "pid " + strconv.Itoa(os.Getpid()), "(pantherctl deploy alpha --yes)", "since 2026-01-02T15:04:05Z", "wait", "--state-dir"} {
		if !strings.Contains(ee.msg, s) {
			t.Errorf("message %q does not say %q", ee.msg, s)
		}
	}
	if strings.Contains(ee.msg, "\n") {
		t.Errorf("message is not one line: %q", ee.msg)
	}
	first.unlock()
	again, err := lockStateDir(dir, "pantherctl status alpha", time.Now())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again.unlock()
	// Another state dir is another node: no conflict.
	other, err := lockStateDir(t.TempDir(), "pantherctl status beta", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other.unlock()
}

// TestStateDirLockHolderIsAnotherProcess: while another process holds the
// state dir, pantherctl commands that bring up the tailnet node (a
// read-only one too) fail at once with exit 1 and that process's pid,
// before joining any tailnet.
func TestStateDirLockHolderIsAnotherProcess(t *testing.T) {
	if dir := os.Getenv("PANTHERCTL_TEST_HOLD_STATE_DIR"); dir != "" {
		// The holder: lock, say so, wait to be killed.
		if _, err := lockStateDir(dir, "pantherctl deploy alpha --yes", time.Now()); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	t.Parallel()
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestStateDirLockHolderIsAnotherProcess$")
	holder.Env = append(os.Environ(), "PANTHERCTL_TEST_HOLD_STATE_DIR="+dir)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("holder: %q", line)
	}
	flake := t.TempDir()
	// deploy and build-all take the same lock in the same place
	// (connectTailnet), after packing the flake.
	for _, args := range [][]string{
		{"status", "alpha", "--flake", flake},
		{"logs", "alpha"},
		{"rollback", "alpha", "--list"},
	} {
		t.Run(args[0], func(t *testing.T) {
			args = append(args, "--state-dir", dir, "--control-url", "http://127.0.0.1:1")
			start := time.Now()
			_, stderr, code := runCLI(t, args...)
			if code != ExitError {
				t.Fatalf("exit %d, want %d: %s", code, ExitError, stderr)
			}
			if !strings.Contains(stderr, "pid "+strconv.Itoa(holder.Process.Pid)) || !strings.Contains(stderr, "--state-dir") {
				t.Errorf("stderr does not name the holder's pid %d and --state-dir: %s", holder.Process.Pid, stderr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: the second run must fail at once", d)
			}
		})
	}
	// The holder ends (killed: no chance to unlock): the state dir is free.
	holder.Process.Kill()
	holder.Wait()
	l, err := lockStateDir(dir, "pantherctl status alpha", time.Now())
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	l.unlock()
}
