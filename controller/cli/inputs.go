package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/pantheros/panther/controller/inputs"
	"github.com/pantheros/panther/internal/flakeinputs"
	"github.com/pantheros/panther/internal/nix"
)

// inputsFlagUsage documents --inputs (deploy).
const inputsFlagUsage = "ship: upload the flake's locked inputs to the agents that lack them (they fetch nothing); fetch: the agents' nix fetches them"

// localNix is the controller's nix, or nil when there is none.
func (c *CLI) localNix() *nix.Nix {
	if _, err := exec.LookPath("nix"); err != nil {
		return nil
	}
	return nix.New(nix.Options{}, c.log)
}

// prepareInputs checks the flake's lock and collects what deploy ships
// (before anything is uploaded); a missing or incomplete lock is named
// with the command that fixes it.
func (c *CLI) prepareInputs(ctx context.Context, flakeDir, mode string) (*inputs.Set, error) {
	set, err := inputs.Prepare(ctx, c.localNix(), flakeDir, mode)
	var le *flakeinputs.LockError
	switch {
	case errors.Is(err, inputs.ErrMode):
		return nil, exitf(ExitUsage, "%v", err)
	case errors.As(err, &le):
		return nil, exitf(ExitError, "%v", le)
	case err != nil:
		return nil, exitf(ExitError, "%v", err)
	}
	if set.Fetch {
		fmt.Fprintln(c.io.Stderr, "inputs: the agents fetch the flake's inputs themselves (--inputs fetch)")
	}
	return set, nil
}

// uploadInputs sends the inputs the host's agent lacks (after its source).
func (b *batch) uploadInputs(ctx context.Context, hr *hostRun) error {
	if b.inputs == nil || len(b.inputs.Inputs) == 0 {
		return nil
	}
	up, err := b.inputs.Upload(ctx, hr.conn, b.s)
	if err != nil {
		return rpcError(hr.host.Name, err)
	}
	if up.Inputs == 0 {
		hr.r.lineOnceAccepted("    the agent already has the %d locked input(s); nothing sent", len(b.inputs.Inputs))
	} else {
		hr.r.lineOnceAccepted("    inputs: %d of %d sent (%d bytes)", up.Inputs, len(b.inputs.Inputs), up.Bytes)
	}
	return nil
}

// lockCheck is preflight's flake.lock check.
func (c *CLI) lockCheck(dir string) func(ctx context.Context) error {
	n := c.localNix()
	if n == nil {
		return nil
	}
	return func(ctx context.Context) error { return flakeinputs.CheckLock(ctx, n, dir) }
}

// revision shows a deployment's git revision: the commit id, "-dirty"
// after it when the checkout had uncommitted changes, "-" when unknown.
func revision(rev string, dirty bool) string {
	switch {
	case rev == "" && dirty:
		return "dirty"
	case rev == "":
		return "-"
	case dirty:
		return rev + "-dirty"
	}
	return rev
}
