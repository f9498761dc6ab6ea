package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"

	"github.com/pantheros/panther/controller/termsafe"
)

func (c *CLI) logsCmd() *command {
	var follow, list bool
	var flake string
	return &command{
		name: "logs", usage: "logs <host> [deployment-id] [--follow] [--list]",
		short: "Print a deployment's full log from the agent (the newest by default).",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&follow, "follow", false, "keep printing until the deployment ends")
			fs.BoolVar(&list, "list", false, "list the deployments the agent keeps")
			fs.StringVar(&flake, "flake", ".", "flake directory whose panther.json maps the host to its tailnetName")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return exitf(ExitUsage, "usage: pantherctl logs <host> [deployment-id] [--follow]")
			}
			host, err := resolveHost(flake, args[0])
			if err != nil {
				return err
			}
			n, err := c.connectTailnet(ctx)
			if err != nil {
				return err
			}
			defer n.close()
			conn, err := c.dial(ctx, n, host)
			if err != nil {
				return err
			}
			defer conn.Close()
			if list {
				resp, err := conn.API.ListDeployments(ctx, &agentv1.ListDeploymentsRequest{})
				if err != nil {
					return rpcError(host, err)
				}
				for _, d := range resp.Deployments {
					fmt.Fprintf(c.io.Stdout, "%-28s %-13s %-20s %-16s %s\n", termsafe.Line(d.DeploymentId), actionName(d.Action), outcomeName(d.Outcome),
						termsafe.Line(orDash(d.KeyId)), termsafe.Line(d.Message))
				}
				return nil
			}
			req := &agentv1.LogsRequest{Follow: follow}
			if len(args) == 2 {
				req.DeploymentId = args[1]
			}
			st, err := conn.API.Logs(ctx, req)
			if err != nil {
				return rpcError(host, err)
			}
			out := termsafe.NewWriter(c.io.Stdout)
			defer out.Close()
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return rpcError(host, err)
				}
				out.Write(m.Data)
			}
		},
	}
}

func actionName(a agentv1.Action) string {
	return phaseLike(a.String(), "ACTION_")
}

func phaseLike(s, prefix string) string {
	out := []byte{}
	for _, r := range s[len(prefix):] {
		switch {
		case r == '_':
			out = append(out, '-')
		case r >= 'A' && r <= 'Z':
			out = append(out, byte(r-'A'+'a'))
		default:
			out = append(out, byte(r))
		}
	}
	return string(out)
}
