package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/rollout"
)

func (c *CLI) rollbackCmd() *command {
	var list, rollback, yes, noConfirm, detach bool
	var confirm time.Duration
	var logDir, flake string
	return &command{
		name: "rollback", usage: "rollback [host] --list | --rollback [N]",
		short: "List a host's generations, or switch back to an earlier one (with dead-man protection).",
		long: `Without a host, the host is this machine's own host name. --rollback without N goes
to the newest generation before the running one that holds another system and did not
fail: a generation made by a deployment that was rolled back (or failed) is marked
FAILED in --list and is never the previous one. A rollback is a switch like any other:
it must be confirmed in time or the host returns to where it was.`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&list, "list", false, "list generations")
			fs.BoolVar(&rollback, "rollback", false, "switch to generation N (default: the newest earlier one that did not fail)")
			fs.BoolVar(&yes, "yes", false, "do not ask before switching")
			fs.BoolVar(&noConfirm, "no-confirm", false, "do not confirm: let the dead-man undo the rollback; waits for that and exits 4")
			fs.BoolVar(&detach, "detach", false, "with --no-confirm: return (exit 0) as soon as the confirmation window is open")
			fs.DurationVar(&confirm, "confirm-timeout", 0, "confirmation window (default: the agent's)")
			fs.StringVar(&logDir, "log-dir", "logs", "where the controller-side logs go")
			fs.StringVar(&flake, "flake", ".", "flake directory whose panther.json maps the host to its tailnetName")
		},
		run: func(ctx context.Context, args []string) error {
			host, _ := os.Hostname()
			var gen int64
			switch {
			case list == rollback:
				return exitf(ExitUsage, "give exactly one of --list or --rollback")
			case len(args) > 2:
				return exitf(ExitUsage, "usage: pantherctl rollback [host] --list | --rollback [N]")
			case detach && !noConfirm:
				return exitf(ExitUsage, "--detach goes with --no-confirm (a detached pantherctl cannot confirm)")
			}
			if len(args) >= 1 {
				host = args[0]
				if n, err := strconv.ParseInt(args[0], 10, 64); err == nil && len(args) == 1 && rollback {
					host, _ = os.Hostname()
					gen = n
				}
			}
			if len(args) == 2 {
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || n <= 0 {
					return exitf(ExitUsage, "generation must be a positive number, not %q", args[1])
				}
				gen = n
			}
			h, err := resolveHost(flake, host)
			if err != nil {
				return err
			}
			if list {
				return c.listGenerations(ctx, h)
			}
			return c.rollback(ctx, h, gen, yes, rollout.Options{ConfirmTimeout: confirm, NoConfirm: noConfirm, Detach: detach}, logDir)
		},
	}
}

func (c *CLI) listGenerations(ctx context.Context, h rollout.Host) error {
	n, err := c.connectTailnet(ctx)
	if err != nil {
		return err
	}
	defer n.close()
	fl := c.fleet(n, client.Signer{})
	defer fl.Close()
	gens, err := fl.Generations(ctx, h)
	if err != nil {
		return agentExit(h.Name, err)
	}
	c.printGenerations(h.Address(), gens)
	return nil
}

// printGenerations prints rollback --list: JSON lines, or a table whose
// columns follow their content.
func (c *CLI) printGenerations(host string, gens []client.Generation) {
	if c.g.json {
		for _, g := range gens {
			writeJSON(c.io.Stdout, map[string]any{
				"host": host, "number": g.Number, "created": g.Created, "current": g.Current,
				"storePath": g.StorePath, "nixosVersion": g.NixosVersion, "deploymentId": g.DeploymentID,
				"result": g.Result, "reason": g.Reason, "failed": g.Failed,
				"sourceRev": g.SourceRev, "sourceDirty": g.SourceDirty,
			})
		}
		return
	}
	w := c.io.Stdout
	tbl := newTable(column{title: "GEN"}, column{title: "DATE"}, column{title: "CUR"}, column{title: "FAILED"},
		column{title: "NIXOS VERSION", max: 40}, column{title: "DEPLOYMENT", max: 40}, column{title: "RESULT", max: 24},
		column{title: "REVISION"}, column{title: "STORE PATH"})
	for _, g := range gens {
		cur, failed := "", ""
		if g.Current {
			cur = "*"
		}
		if g.Failed {
			failed = "x"
		}
		tbl.add(fmt.Sprint(g.Number), g.Created.Local().Format(time.DateTime), cur, failed,
			orDash(g.NixosVersion), orDash(g.DeploymentID), orDash(g.Result), revision(g.SourceRev, g.SourceDirty), g.StorePath)
	}
	tbl.write(w)
}

func (c *CLI) rollback(ctx context.Context, h rollout.Host, gen int64, yes bool, o rollout.Options, logDir string) error {
	host := h.Address()
	s, err := c.signer()
	if err != nil {
		return err
	}
	if !yes {
		if !c.io.IsTerminal() {
			return exitf(ExitUsage, "no terminal to ask whether to roll back %s: pass --yes", host)
		}
		target := "the previous generation"
		if gen > 0 {
			target = fmt.Sprintf("generation %d", gen)
		}
		if !c.ask(fmt.Sprintf("roll %s back to %s? [y/N] ", host, target)) {
			return exitf(ExitFailed, "not rolled back (you said no)")
		}
	}
	n, err := c.connectTailnet(ctx)
	if err != nil {
		return err
	}
	defer n.close()
	logf, logPath := c.openLog(logDir, "rollback", host)
	if logf != nil {
		defer logf.Close()
	}
	rd := newRenderer(c, false)
	if logf != nil {
		rd.add(host, logf)
	}
	fl := c.fleet(n, s)
	defer fl.Close()
	// The renderer and the messages name the host as it was dialed.
	h.Name = host
	hr := rollout.New(fl, nil, rd, o, c.log).Rollback(ctx, h, gen)
	if logPath != "" && !c.g.json {
		fmt.Fprintf(c.io.Stdout, "%s: full log: %s\n", host, logPath)
	}
	var err2 error
	if hr.Err != nil {
		err2 = agentExit(host, hr.Err)
	}
	if c.g.json {
		c.jsonSummary(host, hr.Result, err2, logPath)
	}
	if err2 != nil {
		return err2
	}
	res := hr.Result
	if code := exitCodes[hr.Verdict()]; code != ExitOK {
		if res.Outcome == rollout.OutcomeRolledBack && hr.Unreached != "" {
			return exitf(code, "%s: %s", host, unreachedLine(res.Message, hr.Unreached))
		}
		return exitf(code, "%s: %s: %s", host, res.Outcome, res.Message)
	}
	return nil
}

func (c *CLI) jsonSummary(host string, res *rollout.Result, err error, logPath string) {
	out := map[string]any{"summary": true, "host": host, "log": logPath}
	if res != nil {
		out["outcome"] = res.Outcome.String()
		out["message"] = res.Message
		out["storePath"] = res.StorePath
		out["generation"] = res.Generation
		out["exitCode"] = exitCodes[rollout.OutcomeVerdict(res.Outcome)]
	}
	if err != nil {
		out["error"] = err.Error()
	}
	writeJSON(c.io.Stdout, out)
}

func writeJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(w, string(b))
}
