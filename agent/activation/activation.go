// Package activation runs a NixOS system's switch-to-configuration in
// transient systemd units started over D-Bus: the real switch (so that it
// survives the agent being restarted by the switch itself) and dry-activate
// (so that it sees the same environment as the switch).
//
// The unit runs "<toplevel>/bin/switch-to-configuration <mode>" directly, with
// no shell around it: on NixOS a transient unit's PATH holds only systemd's
// own tools. Its output is appended to a file; it stays loaded after it ends
// (RemainAfterExit, and systemd keeps failed units), so how it ended
// (ExecMainCode, ExecMainStatus, Result) is read from systemd, also by an
// agent that restarted in the meantime, until ClearUnit drops the record.
// A deadline (RuntimeMaxSec) makes systemd stop a switch that hangs.
package activation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/systembus"
)

// Systemd is the part of go-systemd's *dbus.Conn that activation uses.
type Systemd interface {
	// StartTransientUnitContext creates and starts a transient unit.
	StartTransientUnitContext(ctx context.Context, name, mode string, properties []sdbus.Property, ch chan<- string) (int, error)
	// StartTransientUnitAux creates and starts a transient unit with
	// auxiliary transient units (a timer and its service).
	StartTransientUnitAux(ctx context.Context, name, mode string, properties []sdbus.Property, aux []sdbus.PropertyCollection, ch chan<- string) (int, error)
	// StartUnitContext starts a loaded unit.
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	// GetUnitPropertiesContext returns the unit's org.freedesktop.systemd1.Unit properties.
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	// GetUnitTypePropertiesContext returns the properties of the unit's type (Service).
	GetUnitTypePropertiesContext(ctx context.Context, unit, unitType string) (map[string]any, error)
	// StopUnitContext stops a unit.
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	// ResetFailedUnitContext drops a failed unit's record.
	ResetFailedUnitContext(ctx context.Context, name string) error
	// Connected reports whether the connection is still up.
	Connected() bool
	// Close closes the connection.
	Close()
}

// ConnectFunc opens a connection to systemd.
type ConnectFunc func(ctx context.Context) (Systemd, error)

// BusConnector returns a ConnectFunc for the system bus at address ("" means
// the default system bus); see systembus.Dial.
func BusConnector(address string) ConnectFunc {
	return func(ctx context.Context) (Systemd, error) {
		conn, err := systembus.Dial(ctx, address)
		if err != nil {
			return nil, err
		}
		return conn, nil
	}
}

// Options configure an Activation.
type Options struct {
	// Environment is passed to every unit on top of systemd's default
	// environment ("NAME=value"), e.g. the agent's LOCALE_ARCHIVE as
	// nixos-rebuild passes it. Default none.
	Environment []string
	// StopTimeout bounds how long systemd waits for a stopped unit (at its
	// deadline or by ClearUnit) before it kills it. Default 30s.
	StopTimeout time.Duration
}

// Activation implements the deploy engine's Activator over systemd's D-Bus
// API. It keeps one connection and opens a new one when a call finds it
// broken (the switch may restart D-Bus).
type Activation struct {
	opts    Options
	connect ConnectFunc
	log     hclog.Logger

	mu   sync.Mutex
	conn Systemd
}

var _ deploy.Activator = (*Activation)(nil)

// New returns an Activation that reaches systemd through connect.
func New(opts Options, connect ConnectFunc, log hclog.Logger) *Activation {
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Activation{opts: opts, connect: connect, log: log.Named("activation")}
}

// Close closes the connection to systemd.
func (a *Activation) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// call runs f on the connection. When f fails on a broken connection (no
// reply from systemd, so nothing happened), it runs once more on a new one.
func (a *Activation) call(ctx context.Context, f func(Systemd) error) error {
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		if a.conn != nil && !a.conn.Connected() {
			a.conn.Close()
			a.conn = nil
		}
		conn := a.conn
		if conn == nil {
			c, err := a.connect(ctx)
			if err != nil {
				a.mu.Unlock()
				return err
			}
			a.conn, conn = c, c
		}
		a.mu.Unlock()
		err := f(conn)
		if err == nil || isReply(err) || ctx.Err() != nil || attempt > 0 {
			return err
		}
		a.log.Debug("systemd call failed; reconnecting", "error", err)
		a.mu.Lock()
		if a.conn == conn {
			a.conn.Close()
			a.conn = nil
		}
		a.mu.Unlock()
	}
}

// isReply reports whether err is an error reply from the bus (systemd
// answered) rather than a broken connection.
func isReply(err error) bool {
	var e *godbus.Error
	if errors.As(err, &e) {
		return true
	}
	var v godbus.Error
	return errors.As(err, &v)
}

// errorName is the D-Bus error name of err, "" if it is none.
func errorName(err error) string {
	var e *godbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var v godbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	return ""
}

// Modes switch-to-configuration takes in a unit.
var modes = map[string]bool{"switch": true, "boot": true, "test": true, "dry-activate": true, "check": true}

// Properties are the transient unit's settings for u, in the order sent.
func (a *Activation) Properties(u deploy.UnitSpec) []sdbus.Property {
	return a.properties(u, true)
}

func (a *Activation) properties(u deploy.UnitSpec, description bool) []sdbus.Property {
	env := append([]string{}, a.opts.Environment...)
	if u.InstallBootloader {
		env = append(env, "NIXOS_INSTALL_BOOTLOADER=1")
	}
	var props []sdbus.Property
	if description {
		props = append(props, sdbus.PropDescription("panther: switch-to-configuration "+u.Mode+" "+u.Toplevel))
	}
	props = append(props,
		// exec: the start job fails when the command cannot be executed.
		sdbus.PropType("exec"),
		sdbus.PropExecStart([]string{u.Toplevel + "/bin/switch-to-configuration", u.Mode}, false),
		// A success stays loaded as "active (exited)"; a failure stays
		// loaded as "failed" (CollectMode=inactive): the record is kept
		// until ClearUnit.
		sdbus.PropRemainAfterExit(true),
		sdbus.Property{Name: "CollectMode", Value: godbus.MakeVariant("inactive")},
		sdbus.Property{Name: "StandardOutputFileToAppend", Value: godbus.MakeVariant(u.Output)},
		sdbus.Property{Name: "StandardErrorFileToAppend", Value: godbus.MakeVariant(u.Output)},
		sdbus.Property{Name: "TimeoutStopUSec", Value: godbus.MakeVariant(uint64(a.opts.StopTimeout / time.Microsecond))},
	)
	if len(env) > 0 {
		props = append(props, sdbus.Property{Name: "Environment", Value: godbus.MakeVariant(env)})
	}
	if u.Deadline > 0 {
		props = append(props, sdbus.Property{Name: "RuntimeMaxUSec", Value: godbus.MakeVariant(uint64(u.Deadline / time.Microsecond))})
	}
	return props
}

// StartUnit implements deploy.Activator: it starts the unit and waits for
// its start job, which ends once the command runs.
func (a *Activation) StartUnit(ctx context.Context, u deploy.UnitSpec) error {
	if !modes[u.Mode] {
		return fmt.Errorf("unknown switch-to-configuration mode %q", u.Mode)
	}
	if u.Unit == "" || u.Toplevel == "" || u.Output == "" {
		return fmt.Errorf("starting a switch unit: unit name, toplevel and output are required")
	}
	name := serviceName(u.Unit)
	a.log.Info("starting switch unit", "unit", name, "mode", u.Mode, "toplevel", u.Toplevel, "deadline", u.Deadline, "install_bootloader", u.InstallBootloader)
	props := a.Properties(u)
	ch := make(chan string, 1)
	err := a.call(ctx, func(c Systemd) error {
		_, err := c.StartTransientUnitContext(ctx, name, "fail", props, ch)
		return err
	})
	if err != nil {
		return fmt.Errorf("starting %s over D-Bus: %w", name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			// The unit stays loaded as failed; its status says why.
			return fmt.Errorf("starting %s: start job %s", name, res)
		}
		return nil
	case <-time.After(jobWait):
		// The job's end was lost with a broken connection (the bus
		// restarted); the unit's state says whether it runs.
		st, err := a.UnitStatus(ctx, u.Unit)
		if err != nil {
			return fmt.Errorf("starting %s: no job result within %v: %w", name, jobWait, err)
		}
		if st.State == deploy.UnitGone {
			return fmt.Errorf("starting %s: no job result within %v and the unit is gone", name, jobWait)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jobWait bounds the wait for a start job's result before the unit's state
// is asked instead.
const jobWait = 15 * time.Second

// UnitStatus implements deploy.Activator.
func (a *Activation) UnitStatus(ctx context.Context, unit string) (deploy.UnitStatus, error) {
	name := serviceName(unit)
	var up, sp map[string]any
	err := a.call(ctx, func(c Systemd) error {
		var err error
		if up, err = c.GetUnitPropertiesContext(ctx, name); err != nil {
			return err
		}
		if str(up, "LoadState") != "loaded" {
			return nil
		}
		sp, err = c.GetUnitTypePropertiesContext(ctx, name, "Service")
		return err
	})
	if err != nil {
		if errorName(err) == "org.freedesktop.systemd1.NoSuchUnit" {
			return deploy.UnitStatus{State: deploy.UnitGone}, nil
		}
		return deploy.UnitStatus{}, fmt.Errorf("reading %s over D-Bus: %w", name, err)
	}
	return statusOf(up, sp), nil
}

// Process end codes of ExecMainCode (waitid's si_code).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// statusOf reads a unit's Unit and Service properties.
func statusOf(up, sp map[string]any) deploy.UnitStatus {
	if str(up, "LoadState") != "loaded" {
		return deploy.UnitStatus{State: deploy.UnitGone}
	}
	active, sub := str(up, "ActiveState"), str(up, "SubState")
	switch {
	case active == "active" && sub == "exited", active == "failed":
	case active == "inactive":
		// Stopped, about to be collected: its exit was not kept.
		return deploy.UnitStatus{State: deploy.UnitGone}
	default: // activating, active (running), deactivating, reloading
		return deploy.UnitStatus{State: deploy.UnitRunning}
	}
	st := deploy.UnitStatus{
		Result:   str(sp, "Result"),
		Deadline: time.Duration(num(sp, "RuntimeMaxUSec")) * time.Microsecond,
	}
	code, status := num(sp, "ExecMainCode"), num(sp, "ExecMainStatus")
	switch {
	case st.Result == "timeout":
		st.State = deploy.UnitTimedOut
	case code == cldExited:
		st.State, st.ExitCode = deploy.UnitExited, int(status)
	case code == cldKilled || code == cldDumped:
		st.State, st.Signal = deploy.UnitKilled, unix.SignalName(unix.Signal(status))
		if st.Signal == "" {
			st.Signal = fmt.Sprintf("signal %d", status)
		}
	default:
		st.State = deploy.UnitFailed
	}
	return st
}

// ClearUnit implements deploy.Activator: stop (a running unit, or the
// "active (exited)" record of a success), then reset-failed.
func (a *Activation) ClearUnit(ctx context.Context, unit string) error {
	name := serviceName(unit)
	if err := a.stop(ctx, name); err != nil {
		return err
	}
	a.log.Debug("cleared switch unit", "unit", name)
	return nil
}

// serviceName adds ".service" to a bare unit name.
func serviceName(unit string) string {
	if len(unit) > 8 && unit[len(unit)-8:] == ".service" {
		return unit
	}
	return unit + ".service"
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// num reads an integer property of any D-Bus integer type.
func num(m map[string]any, k string) int64 {
	switch v := m[k].(type) {
	case int32:
		return int64(v)
	case uint32:
		return int64(v)
	case int64:
		return v
	case uint64:
		return int64(v)
	}
	return 0
}
