package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/pantheros/panther/controller/client"
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
			h, err := resolveHost(flake, args[0])
			if err != nil {
				return err
			}
			host := h.Address()
			n, err := c.connectTailnet(ctx)
			if err != nil {
				return err
			}
			defer n.close()
			fl := c.fleet(n, client.Signer{})
			defer fl.Close()
			if list {
				deps, err := fl.Deployments(ctx, h)
				if err != nil {
					return agentExit(host, err)
				}
				for _, d := range deps {
					fmt.Fprintf(c.io.Stdout, "%-28s %-13s %-20s %-16s %s\n", termsafe.Line(d.DeploymentID), d.Action, d.Outcome,
						termsafe.Line(orDash(d.KeyID)), termsafe.Line(d.Message))
				}
				return nil
			}
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			out := termsafe.NewWriter(c.io.Stdout)
			defer out.Close()
			if err := fl.Logs(ctx, h, id, follow, out); err != nil {
				return agentExit(host, err)
			}
			return nil
		},
	}
}
