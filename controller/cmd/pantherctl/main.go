// Command pantherctl deploys NixOS configurations to hosts running
// panther-agent. See controller/cli for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"

	"github.com/pantheros/panther/controller/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		IsTerminal:       func() bool { return isatty.IsTerminal(os.Stdin.Fd()) },
		StdoutIsTerminal: func() bool { return isatty.IsTerminal(os.Stdout.Fd()) },
	})
	stop()
	os.Exit(code)
}
