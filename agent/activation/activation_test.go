package activation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/deploy"
)

// connectTo returns a ConnectFunc handing out f, counting the dials.
func connectTo(f *FakeSystemd, dials *int) ConnectFunc {
	return func(ctx context.Context) (Systemd, error) {
		*dials++
		f.mu.Lock()
		f.closed = false
		f.mu.Unlock()
		return f, nil
	}
}

func TestStartUnitProperties(t *testing.T) {
	f := &FakeSystemd{}
	var dials int
	a := New(Options{Environment: []string{"LOCALE_ARCHIVE=/run/current-system/sw/lib/locale/locale-archive"}}, connectTo(f, &dials), nil)
	err := a.StartUnit(context.Background(), deploy.UnitSpec{
		Unit: "panther-switch-d1", Toplevel: "/nix/store/x-sys", Mode: "switch", Output: "/s/log",
		InstallBootloader: true, Deadline: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	// No shell and no PATH lookup: the unit runs the switch itself.
	want := "start panther-switch-d1.service fail " +
		`Description="panther: switch-to-configuration switch /nix/store/x-sys" ` +
		`Type="exec" ` +
		`ExecStart=[("/nix/store/x-sys/bin/switch-to-configuration", ["/nix/store/x-sys/bin/switch-to-configuration", "switch"], false,)] ` +
		`RemainAfterExit=true CollectMode="inactive" ` +
		`StandardOutputFileToAppend="/s/log" StandardErrorFileToAppend="/s/log" ` +
		`TimeoutStopUSec=@t 30000000 ` +
		`Environment=["LOCALE_ARCHIVE=/run/current-system/sw/lib/locale/locale-archive", "NIXOS_INSTALL_BOOTLOADER=1"] ` +
		`RuntimeMaxUSec=@t 600000000`
	if len(f.Calls) != 1 || f.Calls[0] != want {
		t.Errorf("calls:\n got %q\nwant %q", f.Calls, want)
	}

	// dry-activate runs the same way, without the boot loader and deadline
	// when none is asked for.
	f.Calls = nil
	if err := a.StartUnit(context.Background(), deploy.UnitSpec{Unit: "d", Toplevel: "/x", Mode: "dry-activate", Output: "/o"}); err != nil {
		t.Fatal(err)
	}
	if c := f.Calls[0]; strings.Contains(c, "NIXOS_INSTALL_BOOTLOADER") || strings.Contains(c, "RuntimeMaxUSec") || !strings.Contains(c, `"/x/bin/switch-to-configuration", "dry-activate"`) {
		t.Errorf("dry-activate unit: %s", c)
	}

	for _, bad := range []deploy.UnitSpec{
		{Unit: "u", Toplevel: "/x", Mode: "reboot", Output: "/o"},
		{Unit: "u", Toplevel: "/x", Mode: "switch"},
	} {
		if err := a.StartUnit(context.Background(), bad); err == nil {
			t.Errorf("StartUnit(%+v) accepted", bad)
		}
	}
	if dials != 1 {
		t.Errorf("%d connections, want one kept", dials)
	}
}

func TestStartUnitJobFails(t *testing.T) {
	f := &FakeSystemd{JobResult: "failed"}
	var dials int
	err := New(Options{}, connectTo(f, &dials), nil).StartUnit(context.Background(), deploy.UnitSpec{Unit: "u", Toplevel: "/x", Mode: "switch", Output: "/o"})
	if err == nil || !strings.Contains(err.Error(), "start job failed") {
		t.Errorf("err = %v", err)
	}
}

func TestUnitStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props map[string]any // nil: not loaded
		want  deploy.UnitStatus
	}{
		{"not loaded", nil, deploy.UnitStatus{State: deploy.UnitGone}},
		{"running", map[string]any{"ActiveState": "active", "SubState": "running"}, deploy.UnitStatus{State: deploy.UnitRunning}},
		{"stopping", map[string]any{"ActiveState": "deactivating", "SubState": "stop-sigterm", "Result": "timeout"}, deploy.UnitStatus{State: deploy.UnitRunning}},
		{
			"exit 0 kept by RemainAfterExit",
			map[string]any{"ActiveState": "active", "SubState": "exited", "Result": "success", "ExecMainCode": int32(1), "ExecMainStatus": int32(0)},
			deploy.UnitStatus{State: deploy.UnitExited, ExitCode: 0, Result: "success"},
		},
		{
			"exit 4",
			map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "exit-code", "ExecMainCode": int32(1), "ExecMainStatus": int32(4)},
			deploy.UnitStatus{State: deploy.UnitExited, ExitCode: 4, Result: "exit-code"},
		},
		{
			"killed",
			map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "signal", "ExecMainCode": int32(2), "ExecMainStatus": int32(9)},
			deploy.UnitStatus{State: deploy.UnitKilled, Signal: "SIGKILL", Result: "signal"},
		},
		{
			"deadline",
			map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "timeout", "ExecMainCode": int32(2), "ExecMainStatus": int32(15), "RuntimeMaxUSec": uint64(600e6)},
			deploy.UnitStatus{State: deploy.UnitTimedOut, Result: "timeout", Deadline: 10 * time.Minute},
		},
		{
			"never ran",
			map[string]any{"ActiveState": "failed", "SubState": "failed", "Result": "resources", "ExecMainCode": int32(0)},
			deploy.UnitStatus{State: deploy.UnitFailed, Result: "resources"},
		},
		{"stopped, about to be collected", map[string]any{"ActiveState": "inactive", "SubState": "dead"}, deploy.UnitStatus{State: deploy.UnitGone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &FakeSystemd{}
			if tc.props != nil {
				f.SetUnit("u.service", tc.props)
			}
			var dials int
			got, err := New(Options{}, connectTo(f, &dials), nil).UnitStatus(context.Background(), "u")
			if err != nil || got != tc.want {
				t.Errorf("UnitStatus = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestClearUnit(t *testing.T) {
	f := &FakeSystemd{}
	f.SetUnit("ok.service", map[string]any{"ActiveState": "active", "SubState": "exited"})
	f.SetUnit("bad.service", map[string]any{"ActiveState": "failed", "SubState": "failed"})
	var dials int
	a := New(Options{}, connectTo(f, &dials), nil)
	for _, u := range []string{"ok", "bad", "gone"} {
		if err := a.ClearUnit(context.Background(), u); err != nil {
			t.Errorf("ClearUnit(%s): %v", u, err)
		}
	}
	if got := f.Loaded(); len(got) != 0 {
		t.Errorf("still loaded: %q", got)
	}
	want := []string{
		"stop ok.service replace", "reset-failed ok.service",
		"stop bad.service replace", "reset-failed bad.service",
		"stop gone.service replace",
	}
	if !slices.Equal(f.Calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", f.Calls, want)
	}
}

// TestReconnects: a connection broken by a D-Bus restart during the switch
// is replaced; an error reply from systemd is not retried.
func TestReconnects(t *testing.T) {
	f := &FakeSystemd{}
	var dials int
	a := New(Options{}, connectTo(f, &dials), nil)
	ctx := context.Background()
	if _, err := a.UnitStatus(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.Broken = true
	f.mu.Unlock()
	// The broken connection is seen before the call.
	f.mu.Lock()
	f.Broken = false
	f.closed = true
	f.mu.Unlock()
	if _, err := a.UnitStatus(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
	// A call failing without a reply is tried once more on a new connection.
	f.mu.Lock()
	f.Err = errors.New("connection reset")
	f.mu.Unlock()
	if _, err := a.UnitStatus(ctx, "u"); err == nil {
		t.Error("UnitStatus succeeded")
	}
	if dials != 3 {
		t.Errorf("%d dials, want 3", dials)
	}
	// An error reply is systemd's answer: no retry.
	f.mu.Lock()
	f.Err = NoSuchUnit("x.service")
	f.mu.Unlock()
	if err := a.ClearUnit(ctx, "x"); err != nil {
		t.Errorf("ClearUnit of an unknown unit: %v", err)
	}
	if dials != 3 {
		t.Errorf("%d dials after an error reply, want 3", dials)
	}
}
