package cli

import (
	"context"
	"flag"
	"strconv"
	"strings"

	"github.com/pantheros/panther/internal/manpage"
	"github.com/pantheros/panther/internal/version"
)

// exitCodeDocs explains the exit codes in the man page, in order.
var exitCodeDocs = []struct {
	code int
	doc  string
}{
	{ExitOK, "Success: confirmed, built, dry-activated, or the boot default was set."},
	{ExitError, "An error before or around the deployment (input, key, connection), or the --state-dir is in use by another pantherctl run."},
	{ExitUsage, "Bad command line."},
	{ExitFailed, "The deployment failed before anything changed."},
	{ExitRolledBack, "The host switched, then rolled back to the previous system."},
	{ExitManual, "The rollback failed too: manual intervention is required."},
	{ExitRefused, "The agent refused the request (signature, key, peer, replay, busy, or a configuration other than the host's flakeHost)."},
}

// manDefaults replaces defaults that depend on the machine generating the page.
var manDefaults = map[string]string{
	"key":       "$XDG_CONFIG_HOME/panther/key",
	"state-dir": "$XDG_CONFIG_HOME/panther/tsnet",
	"hostname":  "pantherctl-<hostname>",
}

func (c *CLI) manCmd() *command {
	return &command{
		name: "man", usage: "man",
		short: "Print pantherctl's man page (roff), generated from its commands and flags.",
		long:  `pantherctl man > pantherctl.1 && man ./pantherctl.1 (the Nix package installs it).`,
		flags: func(fs *flag.FlagSet) {},
		run: func(ctx context.Context, args []string) error {
			_, err := c.manPage().WriteTo(c.io.Stdout)
			return err
		},
	}
}

func (c *CLI) manPage() *manpage.Page {
	p := manpage.New("pantherctl", "1", "panther "+version.Version, "panther manual")
	p.Section("name").Para("pantherctl - deploy NixOS configurations to panther agents over the tailnet")
	p.Section("synopsis").Literal("pantherctl <command> [flags] [args]")
	p.Section("description").Para(`pantherctl deploys NixOS configurations to hosts running panther-agent(8), over
the tailnet. It sends a signed request; the agent builds the host's flake, dry-activates,
switches, checks health and rolls back unless pantherctl confirms in time.

Flags may come before or after the arguments. Every flag can also be set as an
environment variable: --control-url is PANTHER_CONTROL_URL.`)
	p.Section("commands")
	for _, cmd := range c.commands {
		p.Sub(cmd.name)
		p.Literal("pantherctl " + cmd.usage)
		p.Para(cmd.short)
		if cmd.long != "" {
			p.Para(cmd.long)
		}
		fs := c.flagSet(cmd)
		if !cmd.raw {
			p.Flags(fs, func(f *flag.Flag) bool { return !c.g.isGlobal(f.Name) }, manDefaults)
		}
	}
	p.Section("global flags").Para("Every command except lab takes these.")
	gfs := flag.NewFlagSet("", flag.ContinueOnError)
	new(globals).register(gfs)
	p.Flags(gfs, nil, manDefaults)
	p.Section("environment")
	gfs.VisitAll(func(f *flag.Flag) {
		p.Item("PANTHER_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), "Same as --"+f.Name+".")
	})
	p.Section("exit status")
	for _, e := range exitCodeDocs {
		p.Item(itoa(e.code), e.doc)
	}
	p.Section("files")
	p.Item("$XDG_CONFIG_HOME/panther/key", "The operator's private signing key (~/.config when XDG_CONFIG_HOME is unset; ~/Library/Application Support on macOS).")
	p.Item("$XDG_CONFIG_HOME/panther/tsnet", "State of pantherctl's own tailnet node.")
	p.Section("see also").Para("panther-agent(8), nixos-rebuild(8)")
	return p
}

func itoa(i int) string {
	return strconv.Itoa(i)
}
