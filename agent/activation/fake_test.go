package activation

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// FakeRunner records every command and answers from a script.
type FakeRunner struct {
	mu    sync.Mutex
	Calls []string
	// Respond returns output lines and the exit code for argv; nil means exit 0.
	Respond func(argv []string) ([]string, int, error)
}

// Run implements Runner.
func (f *FakeRunner) Run(ctx context.Context, argv []string, onLine func(string)) (int, error) {
	f.mu.Lock()
	f.Calls = append(f.Calls, strings.Join(argv, " "))
	respond := f.Respond
	f.mu.Unlock()
	if respond == nil {
		return 0, nil
	}
	lines, code, err := respond(argv)
	for _, l := range lines {
		if onLine != nil {
			onLine(l)
		}
	}
	return code, err
}

// FakeSystemd is a recording stand-in for a systemd D-Bus connection: it
// keeps the properties of the units it was asked to start, lets a test set
// their state, and records every call as one line of text.
type FakeSystemd struct {
	mu    sync.Mutex
	Calls []string
	// Units holds each unit's Unit and Service properties by name; a unit
	// that is not here is not loaded.
	Units map[string]map[string]any
	// JobResult is the start job's result; default "done".
	JobResult string
	// Err, when set, fails every call with it.
	Err error
	// Broken makes the connection report itself disconnected.
	Broken bool
	closed bool
}

// NoSuchUnit is the error systemd replies for a unit it does not know.
func NoSuchUnit(name string) error {
	return &godbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit " + name + " not loaded."}}
}

func (f *FakeSystemd) record(format string, args ...any) error {
	f.Calls = append(f.Calls, fmt.Sprintf(format, args...))
	return f.Err
}

// StartTransientUnitContext implements Systemd: the unit is loaded and
// running.
func (f *FakeSystemd) StartTransientUnitContext(ctx context.Context, name, mode string, props []sdbus.Property, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var kv []string
	for _, p := range props {
		kv = append(kv, p.Name+"="+p.Value.String())
	}
	if err := f.record("start %s %s %s", name, mode, strings.Join(kv, " ")); err != nil {
		return 0, err
	}
	if f.Units == nil {
		f.Units = map[string]map[string]any{}
	}
	if f.Units[name] != nil {
		return 0, &godbus.Error{Name: "org.freedesktop.systemd1.UnitExists", Body: []any{"Unit " + name + " was already loaded or has a fragment file."}}
	}
	f.Units[name] = map[string]any{"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}
	res := f.JobResult
	if res == "" {
		res = "done"
	}
	if ch != nil {
		ch <- res
	}
	return 1, nil
}

// SetUnit sets properties of a unit, loading it if needed.
func (f *FakeSystemd) SetUnit(name string, props map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Units == nil {
		f.Units = map[string]map[string]any{}
	}
	if f.Units[name] == nil {
		f.Units[name] = map[string]any{"LoadState": "loaded"}
	}
	for k, v := range props {
		f.Units[name][k] = v
	}
}

func (f *FakeSystemd) props(name string) map[string]any {
	u := f.Units[name]
	if u == nil {
		return map[string]any{"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}
	}
	out := map[string]any{}
	for k, v := range u {
		out[k] = v
	}
	return out
}

// GetUnitPropertiesContext implements Systemd.
func (f *FakeSystemd) GetUnitPropertiesContext(ctx context.Context, name string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("get-unit %s", name); err != nil {
		return nil, err
	}
	return f.props(name), nil
}

// GetUnitTypePropertiesContext implements Systemd.
func (f *FakeSystemd) GetUnitTypePropertiesContext(ctx context.Context, name, unitType string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("get-%s %s", strings.ToLower(unitType), name); err != nil {
		return nil, err
	}
	return f.props(name), nil
}

// StopUnitContext implements Systemd: a unit that ran to its end, or is
// stopped while running with no failure, is collected.
func (f *FakeSystemd) StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("stop %s %s", name, mode); err != nil {
		return 0, err
	}
	u := f.Units[name]
	if u == nil {
		return 0, NoSuchUnit(name)
	}
	if u["ActiveState"] != "failed" {
		delete(f.Units, name)
	}
	if ch != nil {
		ch <- "done"
	}
	return 2, nil
}

// ResetFailedUnitContext implements Systemd.
func (f *FakeSystemd) ResetFailedUnitContext(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("reset-failed %s", name); err != nil {
		return err
	}
	if f.Units[name] == nil {
		return NoSuchUnit(name)
	}
	delete(f.Units, name)
	return nil
}

// Connected implements Systemd.
func (f *FakeSystemd) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.Broken && !f.closed
}

// Close implements Systemd.
func (f *FakeSystemd) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

// Loaded lists the loaded units, sorted.
func (f *FakeSystemd) Loaded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.Units {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// StartTransientUnitAux implements Systemd: the unit and its auxiliary
// units are loaded; the main one runs.
func (f *FakeSystemd) StartTransientUnitAux(ctx context.Context, name, mode string, props []sdbus.Property, aux []sdbus.PropertyCollection, ch chan<- string) (int, error) {
	f.mu.Lock()
	for _, u := range aux {
		var kv []string
		for _, p := range u.Properties {
			kv = append(kv, p.Name+"="+p.Value.String())
		}
		if err := f.record("aux %s %s", u.Name, strings.Join(kv, " ")); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if f.Units == nil {
			f.Units = map[string]map[string]any{}
		}
		f.Units[u.Name] = map[string]any{"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead"}
	}
	f.mu.Unlock()
	return f.StartTransientUnitContext(ctx, name, mode, props, ch)
}

// StartUnitContext implements Systemd: a loaded unit runs.
func (f *FakeSystemd) StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("start-unit %s %s", name, mode); err != nil {
		return 0, err
	}
	u := f.Units[name]
	if u == nil {
		return 0, NoSuchUnit(name)
	}
	if u["ActiveState"] == "inactive" {
		u["ActiveState"], u["SubState"] = "active", "running"
	}
	if ch != nil {
		ch <- "done"
	}
	return 3, nil
}
