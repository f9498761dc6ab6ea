// Command panther-lab runs panther's whole flow on one machine: an
// in-process tailnet and sandboxed hosts running the real panther-agent.
// `pantherctl lab` runs it; see lab for the commands. It is a
// separate binary so that pantherctl carries no lab or test-only code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pantheros/panther/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := lab.Run(ctx, os.Args[1:], lab.IO{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
