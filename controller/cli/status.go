package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

func (c *CLI) statusCmd() *command {
	return &command{
		name: "status", usage: "status <host>...",
		short: "Show each host's agent, running system, generation, systemd state and pending deployment.",
		run: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return exitf(ExitUsage, "status needs at least one host name")
			}
			n, err := c.connectTailnet(ctx)
			if err != nil {
				return err
			}
			defer n.close()
			var firstErr error
			for _, host := range args {
				if err := c.statusOne(ctx, n, host); err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintf(c.io.Stderr, "%s: unreachable: %v\n", host, err)
					if firstErr == nil {
						firstErr = exitf(ExitError, "some hosts could not be reached")
					}
				}
			}
			return firstErr
		},
	}
}

func (c *CLI) statusOne(ctx context.Context, n *network, host string) error {
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := conn.API.Status(cctx, &agentv1.StatusRequest{})
	if err != nil {
		return rpcError(host, err)
	}
	if c.g.json {
		b, _ := protojson.Marshal(st)
		fmt.Fprintln(c.io.Stdout, string(b))
		return nil
	}
	w := c.io.Stdout
	row := func(k, v string) { fmt.Fprintf(w, "%-14s %s\n", k, v) }
	row("host", st.Host)
	row("agent", fmt.Sprintf("%s (up %s)", st.AgentVersion, st.AgentUptime.AsDuration()))
	row("system", orDash(st.CurrentStorePath))
	row("generation", fmt.Sprintf("%d %s", st.CurrentGeneration, st.NixosVersion))
	row("uptime", st.Uptime.AsDuration().String())
	row("state", orDash(st.SystemState))
	failed := "none"
	if len(st.FailedUnits) > 0 {
		failed = strings.Join(st.FailedUnits, ", ")
	}
	row("failed units", failed)
	if p := st.Pending; p != nil {
		left := time.Until(p.Deadline.AsTime()).Round(time.Second)
		row("pending", fmt.Sprintf("%s awaiting confirmation, %s left (else it rolls back)", p.DeploymentId, left))
	}
	if l := st.LastDeployment; l != nil {
		row("last deploy", fmt.Sprintf("%s %s %s %s", l.DeploymentId, outcomeName(l.Outcome), l.Started.AsTime().Local().Format(time.DateTime), l.Message))
	}
	fmt.Fprintln(w)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func outcomeName(o agentv1.Outcome) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_")), "_", " ")
}

func phaseName(p agentv1.Phase) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(p.String(), "PHASE_")), "_", "-")
}
