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
// exit code.
func Run(ctx context.Context, args []string, stdio IO) int {
	if stdio.Getenv == nil {
		stdio.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdio.Stdout, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	defDir := DefaultDir
	if d := stdio.Getenv(DirEnv); d != "" {
		defDir = d
	}
	fs := flag.NewFlagSet("panther-lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	var opts Options
	agentFlags := func() {
		fs.StringVar(&opts.Agent, "agent", "", "panther-agent binary (default: next to panther-lab, else on PATH)")
		fs.StringVar(&opts.Ctl, "pantherctl", "", "pantherctl binary (default: next to panther-lab, else on PATH)")
		fs.StringVar(&opts.FlakeSource, "flake", "", "flake directory to copy instead of the built-in examples/lab")
	}
	var keep, verbose bool
	var window time.Duration
	switch args[0] {
	case "demo":
		fs.StringVar(&opts.Dir, "dir", "", "lab directory, removed afterwards unless --keep (default: a new temporary one)")
		fs.BoolVar(&keep, "keep", false, "keep the lab directory afterwards (logs, hosts' disks)")
		fs.DurationVar(&window, "window", 20*time.Second, "confirmation window of the deploy that cuts the network")
		fs.BoolVar(&verbose, "verbose", false, "log what the lab does to stderr")
		agentFlags()
	case "up", serveArg:
		fs.StringVar(&opts.Dir, "dir", defDir, "lab directory (also "+DirEnv+")")
		agentFlags()
	case "down", "env":
		fs.StringVar(&opts.Dir, "dir", defDir, "lab directory (also "+DirEnv+")")
	default:
		fmt.Fprintf(stdio.Stderr, "panther-lab: unknown command %q (see 'panther-lab --help')\n", args[0])
		return ExitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Stderr, "panther-lab %s: unexpected arguments %q\n", args[0], fs.Args())
		return ExitUsage
	}

	switch args[0] {
	case "down":
		return report(stdio, Down(ctx, DownOptions{Dir: opts.Dir, Out: stdio.Stdout}))
	case "env":
		line, err := Env(opts.Dir)
		if err == nil {
			fmt.Fprintln(stdio.Stdout, line)
		}
		return report(stdio, err)
	}
	if err := Preflight(nil); err != nil {
		return report(stdio, err)
	}
	if bins, err := FindBinaries(); err == nil {
		if opts.Agent == "" {
			opts.Agent = bins.Agent
		}
		if opts.Ctl == "" {
			opts.Ctl = bins.Ctl
		}
	}
	switch args[0] {
	case "up":
		return report(stdio, Up(ctx, UpOptions{Lab: opts, Out: stdio.Stdout}))
	case serveArg:
		return report(stdio, Serve(ctx, opts))
	}
	// demo
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
