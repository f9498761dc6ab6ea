package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// labBinary is the program that runs the lab. The lab embeds a tailnet
// control server and sandbox code that pantherctl must not carry, so it is
// a separate binary that `pantherctl lab` runs.
const labBinary = "panther-lab"

func (c *CLI) labCmd() *command {
	return &command{
		name: "lab", usage: "lab demo | up | down | env [flags]",
		short: "Run the whole flow on this machine: a tailnet and three sandboxed hosts (panther-lab).",
		long: `demo boots a lab, walks through build-all, deploy --dry-run, a confirmed deploy, a
deploy that cuts a host's network and is rolled back by the dead-man switch,
rollback --list, rollback --rollback and status, and prints a summary (exit 1 when a
step did not behave as shown). up keeps a lab running in the background and prints
the line that points pantherctl at it; down stops it and removes everything it made.
Needs root, systemd and nix; runs the panther-lab binary found next to pantherctl or
on PATH ('make build' builds it). 'pantherctl lab --help' lists panther-lab's flags.`,
		raw: true,
		run: c.lab,
	}
}

// lab runs panther-lab with args and passes its exit code on.
func (c *CLI) lab(ctx context.Context, args []string) error {
	bin, err := findLabBinary()
	if err != nil {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			// Help needs no lab: say what it is and how to get it.
			cmd := c.labCmd()
			fmt.Fprintf(c.io.Stdout, "Usage: pantherctl %s\n\n%s\n\n%s\n\n%s\n", cmd.usage, cmd.short, cmd.long, err)
			return nil
		}
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.io.Stdin, c.io.Stdout, c.io.Stderr
	// On interruption panther-lab stops its sandboxes before it exits.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 90 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.ExitCode()}
	}
	if err != nil {
		return exitf(ExitError, "running %s: %v", bin, err)
	}
	return nil
}

// findLabBinary looks for panther-lab next to the running pantherctl, then
// on PATH.
func findLabBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			p := filepath.Join(filepath.Dir(self), labBinary)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath(labBinary); err == nil {
		return p, nil
	}
	return "", exitf(ExitError, "%s is neither next to pantherctl nor on PATH: build it with 'make build' (bin/%s) or 'go build ./controller/cmd/%s'", labBinary, labBinary, labBinary)
}
