package cli

import (
	"context"
	"flag"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/controller/preflight"
	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/nix"
)

func (c *CLI) preflightCmd() *command {
	var (
		flakeDir string
		all      bool
		timeout  time.Duration
	)
	return &command{
		name: "preflight", usage: "preflight [host|@tag...] [--all] [--flake DIR]",
		short: "Check before deploying: flake evaluates, hosts exist, agents answer, git tree, warnings.",
		long: `Runs the pre-deployment checklist and prints one row per check:
  flake.lock complete  every input flake.nix declares is locked (else: run nix flake lock)
  flake evaluates   the flake's nixosConfigurations list evaluates
  git tree clean    uncommitted changes under the flake (listed; a warning only)
  in flake          each selected host is one of nixosConfigurations
  agent reachable   its agent answers a Status call over the tailnet (round-trip time)
  config.warnings   what NixOS would warn about while building it
Exit status 0 when no check FAILs, 3 otherwise.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&flakeDir, "flake", ".", "flake directory")
			fs.BoolVar(&all, "all", false, "every host of the flake")
			fs.DurationVar(&timeout, "timeout", 15*time.Second, "how long each agent has to answer")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) == 0 && !all {
				return exitf(ExitUsage, "preflight needs host names, @tags or --all")
			}
			dir, err := flakeDirRef(flakeDir)
			if err != nil {
				return err
			}
			inv, err := inventory.Load(dir)
			if err != nil {
				return exitf(ExitError, "%v", err)
			}
			// Join the tailnet first, outside each host's --timeout; if that
			// fails, every host's reachability check says why.
			p := &statusPinger{c: c}
			p.n, p.err = c.connectTailnet(ctx)
			defer p.close()
			cl := preflight.New(nix.New(nix.Options{}, c.log), p, preflight.ExecGit{},
				preflight.Options{PingTimeout: timeout}, c.log)
			rep := cl.Run(ctx, preflight.Input{FlakeDir: dir, FlakeRef: dir, Inventory: inv, Selectors: args, All: all, Lock: c.lockCheck(dir)})
			code := ExitOK
			if !rep.OK() {
				code = ExitFailed
			}
			if c.g.json {
				rep.WriteJSON(c.io.Stdout, code)
			} else {
				rep.WriteTable(c.io.Stdout)
			}
			if code != ExitOK {
				return exitf(code, "")
			}
			return nil
		},
	}
}

// statusPinger pings agents with the Status RPC over pantherctl's tailnet
// node (n), or fails every ping with err when joining the tailnet failed.
type statusPinger struct {
	c   *CLI
	n   *network
	err error
}

func (p *statusPinger) Ping(ctx context.Context, addr string) (preflight.Pong, error) {
	if p.err != nil {
		return preflight.Pong{}, p.err
	}
	// A connection of its own: the first call pays for the connection, a
	// second one over it is the round trip itself.
	fl := p.c.fleet(p.n, client.Signer{})
	defer fl.Close()
	h := rollout.Host{Name: addr}
	first, err := fl.Status(ctx, h, statusTimeout)
	if err != nil {
		return preflight.Pong{}, agentExit(addr, err)
	}
	second, err := fl.Status(ctx, h, statusTimeout)
	if err != nil {
		return preflight.Pong{}, agentExit(addr, err)
	}
	return preflight.Pong{
		RTT: second.RTT, Connect: first.RTT, AgentVersion: first.AgentVersion,
		System: first.CurrentStorePath, Generation: first.CurrentGeneration, SystemState: first.SystemState,
	}, nil
}

func (p *statusPinger) close() {
	if p.n != nil {
		p.n.close()
	}
}
