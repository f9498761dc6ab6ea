package activation

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
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
