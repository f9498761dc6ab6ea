package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/pantheros/panther/lab/sandbox"
)

// Exit codes of panther-lab.
const (
	ExitOK      = 0 // done; the demo: every step behaved as shown
	ExitFailed  = 1 // a demo step did not behave as shown, or the lab failed
	ExitUsage   = 2 // bad command line
	ExitMissing = 3 // this machine lacks a prerequisite (the message says which and how to get it)
)

// IO is where panther-lab writes; tests swap it.
type IO struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
}

// DirEnv names the environment variable that overrides DefaultDir.
const DirEnv = "PANTHER_LAB_DIR"

const usage = `panther-lab runs panther's whole flow on this machine: an in-process tailnet and
three hosts (alpha, beta, gamma) that are systemd sandboxes running the real
panther-agent with real nix. 'pantherctl lab <command>' runs it.

Usage: panther-lab <command> [flags]

Commands:
  demo   boot a lab, walk through every pantherctl command, print a summary, remove it
  up     start a lab in the background and print how to point pantherctl at it
  down   stop the background lab and remove everything it created
  env    print the export line of the running lab

Run 'panther-lab <command> --help' for its flags. Needs root, systemd, nix (apt-get install
nix-bin) and panther-agent and pantherctl next to panther-lab or on PATH ('make build').`

// Run runs panther-lab with args (without the program name) and returns the
// exit code. The commands are dispatched by ffcli (see commands).
func Run(ctx context.Context, args []string, stdio IO) int {
	if stdio.Getenv == nil {
		stdio.Getenv = os.Getenv
	}
	root := commands(stdio)
	err := root.Parse(args)
	if err == nil {
		err = root.Run(ctx)
	}
	var code exitCode
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		if !anyParsed(root.Subcommands) {
			// panther-lab --help: the subcommands print their own.
			fmt.Fprintln(stdio.Stdout, usage)
		}
		return ExitOK
	case anyParsed(root.Subcommands):
		return ExitUsage // the flag package printed what is wrong
	default:
		fmt.Fprintf(stdio.Stderr, "panther-lab: %v (see 'panther-lab --help')\n", err)
		return ExitUsage
	}
}

// exitCode is a command's exit code, as an error for ffcli.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

func anyParsed(cmds []*ffcli.Command) bool {
	for _, c := range cmds {
		if c.FlagSet.Parsed() {
			return true
		}
	}
	return false
}

// commands is panther-lab's command tree: the root prints the usage or
// refuses an unknown command; each subcommand has its own flags.
func commands(stdio IO) *ffcli.Command {
	defDir := DefaultDir
	if d := stdio.Getenv(DirEnv); d != "" {
		defDir = d
	}
	rootFS := flag.NewFlagSet("panther-lab", flag.ContinueOnError)
	rootFS.SetOutput(io.Discard) // Run prints the usage and errors
	return &ffcli.Command{
		Name: "panther-lab", ShortUsage: "panther-lab <command> [flags]", FlagSet: rootFS,
		Subcommands: []*ffcli.Command{
			demoCommand(stdio),
			upCommand(stdio, defDir, "up", "start a lab in the background and print how to point pantherctl at it"),
			// serve is what up starts in the background (not in the usage).
			upCommand(stdio, defDir, serveArg, "run the lab in the foreground until stopped (started by up)"),
			dirCommand(stdio, defDir, "down", "stop the background lab and remove everything it created", func(ctx context.Context, dir string) int {
				return report(stdio, Down(ctx, DownOptions{Dir: dir, Out: stdio.Stdout}))
			}),
			dirCommand(stdio, defDir, "env", "print the export line of the running lab", func(_ context.Context, dir string) int {
				line, err := Env(dir)
				if err == nil {
					fmt.Fprintln(stdio.Stdout, line)
				}
				return report(stdio, err)
			}),
		},
		Exec: func(_ context.Context, args []string) error {
			if len(args) == 0 {
				fmt.Fprintln(stdio.Stdout, usage)
				return exitCode(ExitUsage)
			}
			if args[0] == "help" {
				fmt.Fprintln(stdio.Stdout, usage)
				return nil
			}
			fmt.Fprintf(stdio.Stderr, "panther-lab: unknown command %q (see 'panther-lab --help')\n", args[0])
			return exitCode(ExitUsage)
		},
	}
}

// subcommand is one panther-lab command taking flags only; run returns
// its exit code.
func subcommand(stdio IO, name, short string, flags func(fs *flag.FlagSet), run func(ctx context.Context) int) *ffcli.Command {
	fs := flag.NewFlagSet("panther-lab "+name, flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	flags(fs)
	return &ffcli.Command{
		Name: name, ShortUsage: "panther-lab " + name + " [flags]", ShortHelp: short, FlagSet: fs,
		Exec: func(ctx context.Context, rest []string) error {
			if len(rest) > 0 {
				fmt.Fprintf(stdio.Stderr, "panther-lab %s: unexpected arguments %q\n", name, rest)
				return exitCode(ExitUsage)
			}
			return exitCode(run(ctx))
		},
	}
}

// agentFlags registers the flags naming the binaries and the flake a lab runs.
func agentFlags(fs *flag.FlagSet, opts *Options) {
	fs.StringVar(&opts.Agent, "agent", "", "panther-agent binary (default: next to panther-lab, else on PATH)")
	fs.StringVar(&opts.Ctl, "pantherctl", "", "pantherctl binary (default: next to panther-lab, else on PATH)")
	fs.StringVar(&opts.FlakeSource, "flake", "", "flake directory to copy instead of the built-in examples/lab")
}

// prepare checks the machine and fills in the binaries not given.
func prepare(opts *Options) error {
	if err := Preflight(nil); err != nil {
		return err
	}
	if bins, err := FindBinaries(); err == nil {
		if opts.Agent == "" {
			opts.Agent = bins.Agent
		}
		if opts.Ctl == "" {
			opts.Ctl = bins.Ctl
		}
	}
	return nil
}

func demoCommand(stdio IO) *ffcli.Command {
	var opts Options
	var keep, verbose bool
	var window time.Duration
	return subcommand(stdio, "demo", "boot a lab, walk through every pantherctl command, print a summary, remove it", func(fs *flag.FlagSet) {
		fs.StringVar(&opts.Dir, "dir", "", "lab directory, removed afterwards unless --keep (default: a new temporary one)")
		fs.BoolVar(&keep, "keep", false, "keep the lab directory afterwards (logs, hosts' disks)")
		fs.DurationVar(&window, "window", 20*time.Second, "confirmation window of the deploy that cuts the network")
		fs.BoolVar(&verbose, "verbose", false, "log what the lab does to stderr")
		agentFlags(fs, &opts)
	}, func(ctx context.Context) int {
		if err := prepare(&opts); err != nil {
			return report(stdio, err)
		}
		if verbose {
			opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "panther-lab", Level: hclog.Debug, Output: stdio.Stderr})
		}
		sum, err := Demo(ctx, DemoOptions{Lab: opts, Keep: keep, DeadmanWindow: window, Out: stdio.Stdout})
		if err != nil {
			return report(stdio, err)
		}
		if !sum.OK() {
			return ExitFailed
		}
		return ExitOK
	})
}

// upCommand is up (start the lab in the background) or serve (run it in
// the foreground, what up starts).
func upCommand(stdio IO, defDir, name, short string) *ffcli.Command {
	var opts Options
	return subcommand(stdio, name, short, func(fs *flag.FlagSet) {
		fs.StringVar(&opts.Dir, "dir", defDir, "lab directory (also "+DirEnv+")")
		agentFlags(fs, &opts)
	}, func(ctx context.Context) int {
		if err := prepare(&opts); err != nil {
			return report(stdio, err)
		}
		if name == serveArg {
			return report(stdio, Serve(ctx, opts))
		}
		return report(stdio, Up(ctx, UpOptions{Lab: opts, Out: stdio.Stdout}))
	})
}

// dirCommand is a command on the lab in --dir (down, env).
func dirCommand(stdio IO, defDir, name, short string, run func(ctx context.Context, dir string) int) *ffcli.Command {
	var dir string
	return subcommand(stdio, name, short, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "dir", defDir, "lab directory (also "+DirEnv+")")
	}, func(ctx context.Context) int { return run(ctx, dir) })
}

// report prints err and returns its exit code.
func report(stdio IO, err error) int {
	if err == nil {
		return ExitOK
	}
	var me *sandbox.MissingError
	if errors.As(err, &me) {
		fmt.Fprintln(stdio.Stderr, "panther-lab cannot run on this machine:")
		for _, it := range me.Items {
			fmt.Fprintln(stdio.Stderr, "  - "+it)
		}
		return ExitMissing
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stdio.Stderr, "panther-lab: interrupted; what it started is stopped")
		return ExitFailed
	}
	fmt.Fprintln(stdio.Stderr, "panther-lab: "+err.Error())
	return ExitFailed
}
