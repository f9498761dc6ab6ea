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
	"github.com/pantheros/panther/controller/termsafe"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

func (c *CLI) rollbackCmd() *command {
	var list, rollback, yes, noConfirm bool
	var confirm time.Duration
	var logDir string
	return &command{
		name: "rollback", usage: "rollback [host] --list | --rollback [N]",
		short: "List a host's generations, or switch back to an earlier one (with dead-man protection).",
		long: `Without a host, the host is this machine's own host name. --rollback without N goes
to the generation before the current one. A rollback is a switch like any other: it
must be confirmed in time or the host returns to where it was.`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&list, "list", false, "list generations")
			fs.BoolVar(&rollback, "rollback", false, "switch to generation N (default: the previous one)")
			fs.BoolVar(&yes, "yes", false, "do not ask before switching")
			fs.BoolVar(&noConfirm, "no-confirm", false, "do not confirm: let the dead-man undo the rollback")
			fs.DurationVar(&confirm, "confirm-timeout", 0, "confirmation window (default: the agent's)")
			fs.StringVar(&logDir, "log-dir", "logs", "where the controller-side logs go")
		},
		run: func(ctx context.Context, args []string) error {
			host, _ := os.Hostname()
			var gen int64
			switch {
			case list == rollback:
				return exitf(ExitUsage, "give exactly one of --list or --rollback")
			case len(args) > 2:
				return exitf(ExitUsage, "usage: pantherctl rollback [host] --list | --rollback [N]")
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
			n, err := c.connectTailnet(ctx)
			if err != nil {
				return err
			}
			defer n.close()
			if list {
				return c.listGenerations(ctx, n, host)
			}
			return c.rollback(ctx, n, host, gen, yes, noConfirm, confirm, logDir)
		},
	}
}

func (c *CLI) listGenerations(ctx context.Context, n *network, host string) error {
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := conn.API.ListGenerations(ctx, &agentv1.ListGenerationsRequest{})
	if err != nil {
		return rpcError(host, err)
	}
	if c.g.json {
		for _, g := range resp.Generations {
			writeJSON(c.io.Stdout, map[string]any{
				"host": host, "number": g.Number, "created": g.Created.AsTime(), "current": g.Current,
				"storePath": g.StorePath, "nixosVersion": g.NixosVersion, "deploymentId": g.DeploymentId,
				"result": g.Result, "reason": g.Reason,
			})
		}
		return nil
	}
	w := c.io.Stdout
	fmt.Fprintf(w, "%-4s %-19s %-3s %-28s %-26s %-14s %s\n", "GEN", "DATE", "CUR", "NIXOS VERSION", "DEPLOYMENT", "RESULT", "STORE PATH")
	for _, g := range resp.Generations {
		cur := ""
		if g.Current {
			cur = "*"
		}
		fmt.Fprintf(w, "%-4d %-19s %-3s %-28s %-26s %-14s %s\n", g.Number, g.Created.AsTime().Local().Format(time.DateTime), cur,
			termsafe.Line(orDash(g.NixosVersion)), termsafe.Line(orDash(g.DeploymentId)), termsafe.Line(orDash(g.Result)), termsafe.Line(g.StorePath))
	}
	return nil
}

func (c *CLI) rollback(ctx context.Context, n *network, host string, gen int64, yes, noConfirm bool, confirm time.Duration, logDir string) error {
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
	logf, logPath := c.openLog(logDir, "rollback", host)
	if logf != nil {
		defer logf.Close()
	}
	r := &reporter{c: c, host: host, logw: logf}
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := client.NewDeploymentID(time.Now())
	st, err := conn.Rollback(ctx, s, id, gen, confirm)
	if err != nil {
		return rpcError(host, err)
	}
	window := confirm
	if window == 0 {
		window = time.Minute
	}
	res, err := c.finishSwitch(ctx, n, r, s, host, id, st, window, noConfirm)
	if logPath != "" && !c.g.json {
		fmt.Fprintf(c.io.Stdout, "%s: full log: %s\n", host, logPath)
	}
	if c.g.json {
		c.jsonSummary(host, res, err, logPath)
	}
	if err != nil {
		return err
	}
	if code := exitFor(res); code != ExitOK {
		return exitf(code, "%s: %s: %s", host, outcomeName(res.Outcome), res.Message)
	}
	return nil
}

func (c *CLI) jsonSummary(host string, res *agentv1.Result, err error, logPath string) {
	out := map[string]any{"summary": true, "host": host, "log": logPath}
	if res != nil {
		out["outcome"] = outcomeName(res.Outcome)
		out["message"] = res.Message
		out["storePath"] = res.StorePath
		out["generation"] = res.Generation
		out["exitCode"] = exitFor(res)
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
