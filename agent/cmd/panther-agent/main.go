// Command panther-agent is the NixOS service that applies signed
// deployments on its host. See package agent.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pantheros/panther/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agent.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
