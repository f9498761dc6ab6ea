package agent

import (
	"flag"
	"io"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/internal/manpage"
	"github.com/pantheros/panther/internal/version"
)

// runFlags registers the flags of "run" and "check-config" on fs: -config
// and one per config field. Run and the man page share it.
func runFlags(fs *flag.FlagSet) (*string, *config.Flags) {
	cfgPath := fs.String("config", "", "agent config file (JSON, as written by the NixOS module)")
	return cfgPath, config.RegisterFlags(fs)
}

// writeManPage writes panther-agent(8), generated from the same commands
// and flag definitions as Run and 'panther-agent run --help'.
func writeManPage(w io.Writer) error {
	p := manpage.New("panther-agent", "8", "panther "+version.Version, "panther manual")
	p.Section("name").Para("panther-agent - apply signed NixOS deployments on this host, over the tailnet")
	cmds := commands(io.Discard, io.Discard).Subcommands
	var syn []string
	for _, c := range cmds {
		syn = append(syn, c.ShortUsage)
	}
	p.Section("synopsis").Literal(syn...)
	p.Section("description").Para(`panther-agent is the NixOS service (services.panther-agent) that deploys this host's
configuration when a trusted panther controller, pantherctl(1), asks over the tailnet. It verifies
the signed request, builds the host's flake locally, dry-activates, switches in a transient
systemd unit, checks health and rolls the host back unless the controller confirms in time.

It listens on its tailnet node only (tsnet), never on the host's interfaces: the gRPC API on
port (default 7443) and, when metrics.port is set, a Prometheus endpoint (GET /metrics) for the
same peers. Result hooks (resultHooks) run a command and/or POST a webhook on each final result.`)
	p.Section("commands")
	for _, c := range cmds {
		p.Item(c.Name, c.ShortHelp)
	}
	p.Section("options").Para("Each flag overrides the config file's key of the same meaning. Health checks, metrics and result hooks can only be set in the file.")
	fs := flag.NewFlagSet("panther-agent run", flag.ContinueOnError)
	runFlags(fs)
	p.Flags(fs, nil, nil)
	p.Section("files")
	p.Item("/etc/panther/agent.json", "The config file the NixOS module renders (JSON; unknown keys are errors).")
	p.Item(config.DefaultStateDir, "Tailnet state, deployment journal and logs, uploaded flake sources.")
	p.Item(config.DefaultRuntimeDir, "Boot token: tells a reboot from an agent restart.")
	p.Section("exit status")
	p.Item("0", "Stopped normally, or the command succeeded.")
	p.Item("1", "The config is invalid or the agent failed.")
	p.Item("2", "Bad command line.")
	p.Section("see also").Para("pantherctl(1), systemd-run(1), nixos-rebuild(8)")
	_, err := p.WriteTo(w)
	return err
}
