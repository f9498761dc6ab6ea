package nix

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one process for a Runner to run.
type Cmd struct {
	Argv   []string  // program and arguments; Argv[0] is looked up in PATH
	Env    []string  // the whole environment, KEY=value
	Stdout io.Writer // receives standard output
	Stderr io.Writer // receives standard error
	Stdin  io.Reader // standard input; nil: none
}

// Runner runs processes for Nix. ExecRunner is the real one; FakeRunner
// records calls and answers from a script. A failed exit must be reported
// as an error with an `ExitCode() int` method (as *exec.ExitError has).
type Runner interface {
	Run(ctx context.Context, c Cmd) error
}

// ExecRunner runs processes with os/exec. Each runs in its own process
// group; when ctx ends the group gets SIGTERM (nix then stops its builders)
// and, WaitDelay later, the process SIGKILL.
type ExecRunner struct {
	// WaitDelay is how long to wait after SIGTERM. Default (0): 10s.
	WaitDelay time.Duration
}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Cmd) error {
	if len(c.Argv) == 0 {
		return fmt.Errorf("run: empty argv")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.Env
	cmd.Stdout, cmd.Stderr, cmd.Stdin = c.Stdout, c.Stderr, c.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 10 * time.Second
	}
	return cmd.Run()
}

// ExitError is a non-zero exit reported by FakeRunner.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode returns the exit status.
func (e *ExitError) ExitCode() int { return e.Code }

// FakeResult is what FakeRunner answers for one call.
type FakeResult struct {
	Stdout, Stderr string
	ExitCode       int   // non-zero: Run returns *ExitError
	Err            error // returned as is (e.g. exec.ErrNotFound), before ExitCode
}

// FakeRunner is a recording Runner for tests.
type FakeRunner struct {
	// Respond scripts the answer to each call. Default (nil): success with
	// no output.
	Respond func(c Cmd) FakeResult

	mu   sync.Mutex
	cmds []Cmd
}

var _ Runner = (*FakeRunner)(nil)

// Run implements Runner: it records c, then writes the scripted output.
func (f *FakeRunner) Run(ctx context.Context, c Cmd) error {
	f.mu.Lock()
	f.cmds = append(f.cmds, Cmd{Argv: append([]string(nil), c.Argv...), Env: append([]string(nil), c.Env...)})
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	var res FakeResult
	if f.Respond != nil {
		res = f.Respond(c)
	}
	if res.Err != nil {
		return res.Err
	}
	if _, err := io.WriteString(c.Stdout, res.Stdout); err != nil {
		return err
	}
	if _, err := io.WriteString(c.Stderr, res.Stderr); err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// Calls returns each recorded argv joined by spaces, one per call.
func (f *FakeRunner) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.cmds))
	for i, c := range f.cmds {
		out[i] = strings.Join(c.Argv, " ")
	}
	return out
}

// Cmds returns the recorded calls (argv and environment).
func (f *FakeRunner) Cmds() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.cmds...)
}
