package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pantheros/panther/internal/version"
)

// Exit codes of panther-agent (its man page lists them).
const (
	exitOK     = 0 // stopped normally, or the command succeeded
	exitFailed = 1 // the config is invalid or the agent failed
	exitUsage  = 2 // bad command line
)

// exitCode is a command's exit code, as an error for ffcli.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

// Run runs panther-agent with args (without the program name) and returns
// the process exit code. The commands are dispatched by ffcli (commands).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := commands(stdout, stderr)
	err := root.Parse(args)
	if err == nil {
		err = root.Run(ctx)
	}
	var code exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK // the flag package printed the usage
	case errors.As(err, &code):
		return int(code)
	default:
		return exitUsage // the flag package printed what is wrong and the usage
	}
}

// commands is panther-agent's command tree: Run, the usage text and the
// man page all read it.
func commands(stdout, stderr io.Writer) *ffcli.Command {
	rootFS := flag.NewFlagSet("panther-agent", flag.ContinueOnError)
	rootFS.SetOutput(stderr)
	showVersion := rootFS.Bool("version", false, "print the version")
	root := &ffcli.Command{
		Name: "panther-agent", ShortUsage: "panther-agent <command> [flags]", FlagSet: rootFS,
		Subcommands: []*ffcli.Command{
			configCommand("run", "--config FILE [flags]", "Serve the agent API on the tailnet until stopped.", stdout, stderr),
			configCommand("check-config", "--config FILE [flags]", "Validate the config file (with flags applied) and print it with defaults.", stdout, stderr),
			simpleCommand("version", "Print the version.", stderr, func() error {
				fmt.Fprintln(stdout, "panther-agent "+version.Version)
				return nil
			}),
			simpleCommand("man", "Print the man page (roff).", stderr, func() error {
				if err := writeManPage(stdout); err != nil {
					fmt.Fprintf(stderr, "panther-agent: %v\n", err)
					return exitCode(exitFailed)
				}
				return nil
			}),
		},
	}
	root.UsageFunc = func(*ffcli.Command) string { return usage(root) }
	root.Exec = func(_ context.Context, args []string) error {
		switch {
		case *showVersion:
			fmt.Fprintln(stdout, "panther-agent "+version.Version)
			return nil
		case len(args) == 0:
			fmt.Fprintln(stderr, usage(root))
			return exitCode(exitUsage)
		case args[0] == "help":
			fmt.Fprintln(stderr, usage(root))
			return nil
		}
		fmt.Fprintf(stderr, "panther-agent: unknown command %q\n", args[0])
		fmt.Fprintln(stderr, usage(root))
		return exitCode(exitUsage)
	}
	return root
}

// usage is panther-agent's usage text, from its commands.
func usage(root *ffcli.Command) string {
	var b strings.Builder
	b.WriteString("panther-agent applies signed NixOS deployments on this host, over the tailnet.\n\nUsage:\n")
	width := 0
	for _, c := range root.Subcommands {
		width = max(width, len(c.ShortUsage))
	}
	for _, c := range root.Subcommands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.ShortUsage, c.ShortHelp)
	}
	b.WriteString("\nRun 'panther-agent run --help' for the flags; each overrides the config file.")
	return b.String()
}

// configCommand is run or check-config: both read the config file and take
// runFlags.
func configCommand(name, args, short string, stdout, stderr io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("panther-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, flags := runFlags(fs)
	return &ffcli.Command{
		Name: name, ShortUsage: "panther-agent " + name + " " + args, ShortHelp: short, FlagSet: fs,
		Exec: func(ctx context.Context, _ []string) error {
			cfg, err := flags.Load(*cfgPath)
			if err != nil {
				fmt.Fprintf(stderr, "panther-agent: %v\n", err)
				return exitCode(exitFailed)
			}
			if name == "check-config" {
				fmt.Fprintf(stdout, "%+v\n", *cfg)
				return nil
			}
			log := hclog.New(&hclog.LoggerOptions{
				Name: "panther-agent", Level: hclog.LevelFromString(cfg.LogLevel), JSONFormat: cfg.LogJSON, Output: stderr,
			})
			if err := serve(ctx, cfg, log); err != nil {
				log.Error("agent stopped", "error", err)
				return exitCode(exitFailed)
			}
			return nil
		},
	}
}

// simpleCommand is a command without flags.
func simpleCommand(name, short string, stderr io.Writer, run func() error) *ffcli.Command {
	fs := flag.NewFlagSet("panther-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &ffcli.Command{
		Name: name, ShortUsage: "panther-agent " + name, ShortHelp: short, FlagSet: fs,
		Exec: func(context.Context, []string) error { return run() },
	}
}
