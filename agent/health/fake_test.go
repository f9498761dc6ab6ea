package health

import (
	"context"
	"slices"
	"strings"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// FakeSystemd is an in-memory systemd for tests. It records every call as
// one line of text and serves a settable system state and unit table. Its
// Connect method is a ConnectFunc.
type FakeSystemd struct {
	mu         sync.Mutex
	states     []string // returned in turn; the last one repeats
	units      map[string]sdbus.UnitStatus
	mainStatus map[string]int32 // service -> ExecMainStatus
	calls      []string
	connectErr error
	callErr    error
	onCall     func(call string)
}

// NewFakeSystemd returns a fake in state "running" with no units.
func NewFakeSystemd() *FakeSystemd {
	return &FakeSystemd{states: []string{"running"}, units: map[string]sdbus.UnitStatus{}, mainStatus: map[string]int32{}}
}

// SetState makes SystemStateContext return states in turn, repeating the
// last one.
func (f *FakeSystemd) SetState(states ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = slices.Clone(states)
}

// SetUnit adds or replaces a loaded unit.
func (f *FakeSystemd) SetUnit(name, activeState, subState string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[name] = sdbus.UnitStatus{Name: name, LoadState: "loaded", ActiveState: activeState, SubState: subState}
}

// SetExecMainStatus sets a service's ExecMainStatus (its last exit status).
func (f *FakeSystemd) SetExecMainStatus(name string, status int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mainStatus[name] = status
}

// RemoveUnit unloads a unit.
func (f *FakeSystemd) RemoveUnit(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.units, name)
}

// FailConnect makes Connect return err (nil to stop failing).
func (f *FakeSystemd) FailConnect(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connectErr = err
}

// FailCalls makes every D-Bus call return err (nil to stop failing).
func (f *FakeSystemd) FailCalls(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callErr = err
}

// OnCall runs fn (outside the fake's lock) after each call is recorded,
// e.g. to change units between calls.
func (f *FakeSystemd) OnCall(fn func(call string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCall = fn
}

// Calls returns the recorded calls, e.g. "Connect", "SystemState",
// "ListUnits", "ListUnitsByNames a.service b.service", "Close".
func (f *FakeSystemd) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// record notes a call and returns the error calls should fail with.
func (f *FakeSystemd) record(call string) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	err, fn := f.callErr, f.onCall
	if call == "Connect" {
		err = f.connectErr
	}
	f.mu.Unlock()
	if fn != nil {
		fn(call)
	}
	return err
}

// Connect is a ConnectFunc returning the fake itself.
func (f *FakeSystemd) Connect(ctx context.Context) (Systemd, error) {
	if err := f.record("Connect"); err != nil {
		return nil, err
	}
	return f, ctx.Err()
}

// SystemStateContext implements Systemd.
func (f *FakeSystemd) SystemStateContext(ctx context.Context) (*sdbus.Property, error) {
	if err := f.record("SystemState"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	state := f.states[0]
	if len(f.states) > 1 {
		f.states = f.states[1:]
	}
	return &sdbus.Property{Name: "SystemState", Value: godbus.MakeVariant(state)}, nil
}

// ListUnitsContext implements Systemd.
func (f *FakeSystemd) ListUnitsContext(ctx context.Context) ([]sdbus.UnitStatus, error) {
	if err := f.record("ListUnits"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]sdbus.UnitStatus, 0, len(f.units))
	for _, u := range f.units {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b sdbus.UnitStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ListUnitsByNamesContext implements Systemd. Unknown units come back as
// systemd reports them: not-found and inactive.
func (f *FakeSystemd) ListUnitsByNamesContext(ctx context.Context, names []string) ([]sdbus.UnitStatus, error) {
	if err := f.record("ListUnitsByNames " + strings.Join(names, " ")); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]sdbus.UnitStatus, 0, len(names))
	for _, n := range names {
		u, ok := f.units[n]
		if !ok {
			u = sdbus.UnitStatus{Name: n, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
		}
		out = append(out, u)
	}
	return out, nil
}

// GetUnitTypePropertyContext implements Systemd; it knows ExecMainStatus.
func (f *FakeSystemd) GetUnitTypePropertyContext(ctx context.Context, unit, unitType, propertyName string) (*sdbus.Property, error) {
	if err := f.record("GetUnitTypeProperty " + unit + " " + unitType + " " + propertyName); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.units[unit]; !ok || unitType != "Service" || propertyName != "ExecMainStatus" {
		return nil, godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownProperty"}
	}
	return &sdbus.Property{Name: propertyName, Value: godbus.MakeVariant(f.mainStatus[unit])}, nil
}

// Close implements Systemd.
func (f *FakeSystemd) Close() { _ = f.record("Close") }
