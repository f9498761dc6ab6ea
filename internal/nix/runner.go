package nix

import (
	"context"
	"fmt"
	"io"
	"os/exec"
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
