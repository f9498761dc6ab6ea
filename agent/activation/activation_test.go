package activation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDryActivateStreamsAndFails(t *testing.T) {
	f := &FakeRunner{Respond: func(argv []string) ([]string, int, error) {
		return []string{"would start the following units: a.service", "boom"}, 1, nil
	}}
	a := New(Options{}, f, nil)
	var got []string
	err := a.DryActivate(context.Background(), "/nix/store/x-sys", func(l string) { got = append(got, l) })
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(ee.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 2 {
		t.Errorf("lines = %v", got)
	}
	if f.Calls[0] != "/nix/store/x-sys/bin/switch-to-configuration dry-activate" {
		t.Errorf("call = %q", f.Calls[0])
	}
}

func TestStartSwitchArgv(t *testing.T) {
	f := &FakeRunner{}
	a := New(Options{}, f, nil)
	if err := a.StartSwitch(context.Background(), "panther-switch-d1", "/nix/store/x-sys", "switch", "/s/log", "/s/switch.exit"); err != nil {
		t.Fatal(err)
	}
	want := "systemd-run --unit=panther-switch-d1 --collect --description=panther: switch-to-configuration switch /nix/store/x-sys " +
		"--property=StandardOutput=append:/s/log --property=StandardError=append:/s/log -- /bin/sh -c " + wrapper +
		" /nix/store/x-sys/bin/switch-to-configuration switch /s/switch.exit"
	if f.Calls[0] != want {
		t.Errorf("argv\n got %s\nwant %s", f.Calls[0], want)
	}
	if err := a.StartSwitch(context.Background(), "u", "/x", "reboot", "/l", "/e"); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestUnitActive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state string
		want  bool
	}{
		{"active", "active", true},
		{"activating", "activating", true},
		{"collected", "inactive", false},
		{"failed", "failed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &FakeRunner{Respond: func([]string) ([]string, int, error) { return []string{tc.state}, 0, nil }}
			got, err := New(Options{}, f, nil).UnitActive(context.Background(), "u")
			if err != nil || got != tc.want {
				t.Errorf("UnitActive = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestExecRunnerCancelKillsChildren: a cancelled command returns at once
// even when a child of it still holds the output pipe.
func TestExecRunnerCancelKillsChildren(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var lines []string
	_, err := ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", "echo started; sleep 30; echo done"}, func(l string) { lines = append(lines, l) })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %v after the cancel, want at once (err %v)", took, err)
	}
	if len(lines) != 1 || lines[0] != "started" {
		t.Errorf("lines %q, want just \"started\"", lines)
	}
}
