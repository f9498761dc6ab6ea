package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inputs"
	"github.com/pantheros/panther/controller/rollout"
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

// withInputs hooks the input set into the client: each host gets the
// inputs its agent lacks right after the source (the rollout core's
// "prepare the source" step), and every deploy intent lists them and the
// git revision.
func withInputs(fl *client.Fleet, up *client.Upload, set *inputs.Set) {
	if set == nil {
		return
	}
	fl.Decorate = set.Apply
	if len(set.Inputs) == 0 {
		return
	}
	up.Then = func(ctx context.Context, conn *client.Conn, s client.Signer, note func(rollout.Note)) error {
		sent, err := set.Upload(ctx, conn, s)
		if err != nil {
			return err
		}
		if sent.Inputs == 0 {
			note(rollout.Note{OnceAccepted: true, Text: fmt.Sprintf("    the agent already has the %d locked input(s); nothing sent", len(set.Inputs))})
		} else {
			note(rollout.Note{OnceAccepted: true, Text: fmt.Sprintf("    inputs: %d of %d sent (%d bytes)", sent.Inputs, len(set.Inputs), sent.Bytes)})
		}
		return nil
	}
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
