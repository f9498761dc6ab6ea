package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/systembus"
)

// shutdownConn is what shutdownProbe asks systemd (go-systemd's *Conn).
type shutdownConn interface {
	SystemStateContext(ctx context.Context) (*sdbus.Property, error)
	ListJobsContext(ctx context.Context) ([]sdbus.JobStatus, error)
	Close()
}

// shutdownProbe is the engine's Host port over systemd's D-Bus API: is the
// host shutting down? It opens one connection per question (they are rare:
// before a destructive decision), on systemd's private socket first, which
// still answers once dbus-daemon is stopped late in a shutdown, else on the
// system bus.
type shutdownProbe struct {
	dial []func(ctx context.Context) (shutdownConn, error)
}

func newShutdownProbe() shutdownProbe {
	return shutdownProbe{dial: []func(ctx context.Context) (shutdownConn, error){
		func(ctx context.Context) (shutdownConn, error) { return sdbus.NewSystemdConnectionContext(ctx) },
		func(ctx context.Context) (shutdownConn, error) { return systembus.Dial(ctx, "") },
	}}
}

// ShuttingDown implements deploy.Host.
func (p shutdownProbe) ShuttingDown(ctx context.Context) (bool, error) {
	var errs []error
	for _, dial := range p.dial {
		conn, err := dial(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		down, err := shuttingDown(ctx, conn)
		conn.Close()
		if err == nil {
			return down, nil
		}
		errs = append(errs, err)
	}
	return false, fmt.Errorf("asking systemd whether the host is shutting down: %w", errors.Join(errs...))
}

// shutdownTargets are the targets a shutdown, reboot, halt, power-off or
// kexec starts (systemctl reboot starts reboot.target, which pulls in
// shutdown.target).
var shutdownTargets = map[string]bool{
	"shutdown.target": true, "reboot.target": true, "halt.target": true,
	"poweroff.target": true, "kexec.target": true, "soft-reboot.target": true,
}

// shuttingDown: the manager's SystemState is "stopping" (systemd says so
// once a start job for shutdown.target is queued or running), or a start
// job for a shutdown target is queued.
func shuttingDown(ctx context.Context, conn shutdownConn) (bool, error) {
	prop, err := conn.SystemStateContext(ctx)
	if err != nil {
		return false, err
	}
	if state, _ := prop.Value.Value().(string); state == "stopping" {
		return true, nil
	}
	jobs, err := conn.ListJobsContext(ctx)
	if err != nil {
		return false, err
	}
	for _, j := range jobs {
		if shutdownTargets[j.Unit] && strings.HasPrefix(j.JobType, "start") {
			return true, nil
		}
	}
	return false, nil
}

var _ deploy.Host = shutdownProbe{}
