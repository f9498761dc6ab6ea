package nix

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

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
