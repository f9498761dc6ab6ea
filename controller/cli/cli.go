// Package cli implements pantherctl: one file per subcommand, dispatched by
// ffcli, a shared set of global flags (also read from PANTHER_* environment
// variables), one renderer of the core's events (render.go) and one mapping
// from the core's verdicts to exit codes. It parses flags and renders; the
// work is controller/rollout's, over controller/client's Fleet.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pantheros/panther/controller/termsafe"
	"github.com/pantheros/panther/internal/tailnet"
)

// Exit codes of pantherctl (documented in README.md).
const (
	ExitOK         = 0 // success: confirmed, built, dry-activated, boot default set
	ExitError      = 1 // an error before or around the deployment (input, key, connection, state dir in use)
	ExitUsage      = 2 // bad command line
	ExitFailed     = 3 // the deployment failed before anything changed
	ExitRolledBack = 4 // the host switched, then rolled back to the previous system
	ExitManual     = 5 // the rollback failed too: manual intervention required
	ExitRefused    = 6 // the agent refused the request (signature, key, peer, replay, busy, not its flakeHost)
	// ExitRebootRequired: a switch could not activate the new system
	// (switch-to-configuration exited 100, or its inhibitors refused) and
	// only made it the boot default; reboot the host to run it.
	ExitRebootRequired = 7
)

// exitError carries an exit code and one line telling the user what to do.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// IO is where a command reads and writes; tests swap it.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// IsTerminal reports whether stdin is a terminal a person can answer on.
	IsTerminal func() bool
	// StdoutIsTerminal reports whether stdout is a terminal: live per-host
	// lines there, plain line-buffered output otherwise.
	StdoutIsTerminal func() bool
	Getenv           func(string) string
	// Dialer, when set, is how pantherctl reaches the agents instead of
	// joining the tailnet (--via is ignored), and it confirms over it too,
	// not from a new tailnet node: for simulated fleets (lab/simfleet).
	// Default nil: the tailnet.
	Dialer tailnet.Dialer
}

// command is one subcommand: what Run hands to ffcli, and what the
// completion scripts and the man page read.
type command struct {
	name, usage, short string
	long               string
	flags              func(fs *flag.FlagSet)
	run                func(ctx context.Context, args []string) error
	// raw commands get their arguments as given, without flag parsing.
	raw bool
}

// CLI holds the global options and the commands.
type CLI struct {
	io IO
	g  globals
	// set by flags of the running subcommand
	commands []*command
	log      hclog.Logger
	// cmdline is the running command as typed ("pantherctl deploy
	// alpha"), recorded in the state dir's lock.
	cmdline string
}

// Run runs pantherctl with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	if stdio.Getenv == nil {
		stdio.Getenv = os.Getenv
	}
	if stdio.IsTerminal == nil {
		stdio.IsTerminal = func() bool { return false }
	}
	if stdio.StdoutIsTerminal == nil {
		stdio.StdoutIsTerminal = func() bool { return false }
	}
	c := newCLI(stdio)
	return c.exit(c.run(ctx, args))
}

// exit prints err, if any, as pantherctl's last line and returns the exit
// code it stands for.
func (c *CLI) exit(err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(c.io.Stderr, "pantherctl: "+termsafe.Text(ee.msg))
		}
		return ee.code
	}
	fmt.Fprintln(c.io.Stderr, "pantherctl: "+termsafe.Text(err.Error()))
	return ExitError
}

// newCLI returns pantherctl with its commands: Run, the completion scripts
// and the man page all read this one list.
func newCLI(stdio IO) *CLI {
	c := &CLI{io: stdio}
	c.commands = []*command{
		c.deployCmd(), c.rollbackCmd(), c.statusCmd(), c.logsCmd(),
		c.buildAllCmd(), c.preflightCmd(),
		c.keygenCmd(), c.pubkeyCmd(), c.versionCmd(), c.labCmd(),
		c.completionCmd(), c.manCmd(),
	}
	return c
}

func (c *CLI) run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return c.run(ctx, []string{args[1], "--help"})
		}
		c.usage(c.io.Stdout)
		if len(args) == 0 {
			return exitf(ExitUsage, "")
		}
		return nil
	}
	var cmd *command
	for _, cm := range c.commands {
		if cm.name == args[0] {
			cmd = cm
		}
	}
	if cmd == nil {
		return exitf(ExitUsage, "unknown command %q (see 'pantherctl --help')", args[0])
	}
	if cmd.raw {
		return cmd.run(ctx, args[1:])
	}
	root := c.ffcli(args)
	var sub *ffcli.Command
	for _, sc := range root.Subcommands {
		if sc.Name == cmd.name {
			sub = sc
		}
	}
	err := root.Parse(append([]string{cmd.name}, reorder(sub.FlagSet, args[1:])...))
	if errors.Is(err, flag.ErrHelp) {
		c.cmdUsage(c.io.Stdout, cmd, sub.FlagSet)
		return flag.ErrHelp
	}
	if err != nil {
		return exitf(ExitUsage, "%v (see 'pantherctl %s --help')", err, cmd.name)
	}
	return root.Run(ctx)
}

// ffcli is the command tree ffcli parses and runs: pantherctl and its
// subcommands, each with its flags and the global ones (also read from
// PANTHER_* variables). args is the command line, for the state dir's lock.
func (c *CLI) ffcli(args []string) *ffcli.Command {
	root := &ffcli.Command{Name: "pantherctl", FlagSet: flag.NewFlagSet("pantherctl", flag.ContinueOnError)}
	root.FlagSet.SetOutput(io.Discard)
	for _, cmd := range c.commands {
		if cmd.raw {
			continue // gets its arguments as given
		}
		root.Subcommands = append(root.Subcommands, c.ffcliCommand(cmd, args))
	}
	return root
}

func (c *CLI) ffcliCommand(cmd *command, args []string) *ffcli.Command {
	fs := flag.NewFlagSet("pantherctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.g.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return &ffcli.Command{
		Name: cmd.name, ShortUsage: "pantherctl " + cmd.usage, ShortHelp: cmd.short, LongHelp: cmd.long,
		FlagSet: fs, Options: []ff.Option{ff.WithEnvVarPrefix("PANTHER")},
		Exec: func(ctx context.Context, rest []string) error {
			c.g.defaults(fs)
			c.log = c.g.logger(c.io.Stderr)
			c.cmdline = "pantherctl " + strings.Join(args, " ")
			return cmd.run(ctx, rest)
		},
	}
}

// reorder moves flags after positional arguments to the front so that
// "pantherctl deploy yoga --yes" works like "pantherctl deploy --yes yoga".
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // ff.Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), pos...)
}

func (c *CLI) usage(w io.Writer) {
	fmt.Fprintln(w, "pantherctl deploys NixOS configurations to hosts running panther-agent, over the tailnet.")
	fmt.Fprintln(w, "\nUsage: pantherctl <command> [flags] [args]\n\nCommands:")
	for _, cmd := range c.commands {
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.short)
	}
	fmt.Fprintln(w, "\nRun 'pantherctl <command> --help' for a command's flags. Every flag can also be set")
	fmt.Fprintln(w, "as an environment variable: --control-url is PANTHER_CONTROL_URL.")
}

func (c *CLI) cmdUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: pantherctl %s\n\n%s\n", cmd.usage, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	var own, global []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if c.g.isGlobal(f.Name) {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	print := func(title string, fl []*flag.Flag) {
		if len(fl) == 0 {
			return
		}
		sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range fl {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%-20s %s%s\n", f.Name, f.Usage, def)
		}
	}
	print("Flags", own)
	print("Global flags", global)
}

// defaultConfigDir is where pantherctl keeps its key and tailnet state.
func defaultConfigDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "panther")
	}
	return ".panther"
}
