package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/activation"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/systembus"
)

// agentSelf is deploy.AgentSelf for the agent process: its own command
// line, the new system's agent's check-config, and the restart of its unit.
// The NixOS module sets restartIfChanged = false so that a switch never
// kills the agent that runs it; a deployment that changes the agent's unit
// restarts it inside the confirmation window instead (see
// agent/deploy/newagent.go), so that the new agent is what confirms.
type agentSelf struct {
	unit    string
	run     activation.Runner
	restart func(ctx context.Context, unit string) error
	log     hclog.Logger
	exec    []string // nil when the agent does not run as unit
}

var _ deploy.AgentSelf = (*agentSelf)(nil)

// newAgentSelf reads whether this process runs as unit (its cgroup, as
// /proc/self/cgroup names it, is the unit's) and its command line.
func newAgentSelf(unit string, args []string, cgroup string, run activation.Runner, restart func(ctx context.Context, unit string) error, log hclog.Logger) *agentSelf {
	a := &agentSelf{unit: unit, run: run, restart: restart, log: log.Named("new-agent")}
	if inUnit(cgroup, unit) {
		a.exec = args
	} else {
		a.log.Info("not running as the agent's unit: a deployment that changes the unit does not restart this agent", "unit", unit)
	}
	return a
}

// inUnit reports whether the cgroup file (/proc/self/cgroup) places the
// process in unit's cgroup.
func inUnit(cgroupFile, unit string) bool {
	b, err := os.ReadFile(cgroupFile)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controllers:path; "0::<path>" on the unified hierarchy.
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && strings.HasSuffix(parts[2], "/"+unit) {
			return true
		}
	}
	return false
}

// Exec implements deploy.AgentSelf.
func (a *agentSelf) Exec() []string { return a.exec }

// CheckConfig implements deploy.AgentSelf: `<binary> check-config <args>`
// for exec `<binary> run <args>`, the error being the last line the binary
// printed (its own one-line message).
func (a *agentSelf) CheckConfig(ctx context.Context, exec []string) error {
	if len(exec) < 2 || exec[1] != "run" {
		return fmt.Errorf("%q is not a `panther-agent run` command line", strings.Join(exec, " "))
	}
	argv := append([]string{exec[0], "check-config"}, exec[2:]...)
	var last string
	code, err := a.run.Run(ctx, argv, func(l string) {
		if l = strings.TrimSpace(l); l != "" {
			last = l
		}
	})
	if err != nil {
		return fmt.Errorf("cannot run %s: %w", exec[0], err)
	}
	if code != 0 {
		if last == "" {
			last = fmt.Sprintf("exit status %d", code)
		}
		return errors.New(last)
	}
	return nil
}

// Restart implements deploy.AgentSelf: a non-blocking restart job, which
// systemd carries out after this process is gone.
func (a *agentSelf) Restart(ctx context.Context) error {
	if a.exec == nil {
		return fmt.Errorf("the agent does not run as %s", a.unit)
	}
	a.log.Info("restarting the agent's unit", "unit", a.unit)
	if err := a.restart(ctx, a.unit); err != nil {
		return fmt.Errorf("restart %s: %w", a.unit, err)
	}
	return nil
}

// restartOverBus queues a restart job for unit over systemd's D-Bus API
// (mode "replace") without waiting for it: the job stops this process.
func restartOverBus(ctx context.Context, unit string) error {
	conn, err := systembus.Dial(ctx, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.RestartUnitContext(ctx, unit, "replace", nil)
	return err
}
