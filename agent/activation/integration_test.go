package activation_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/activation"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// A switch-to-configuration stand-in per toplevel. Like the real one (a
// compiled program) they need nothing from PATH: /bin/sh is named by the
// "#!" line and every other command by its absolute path.
const (
	stcLock = "/run/nixos/switch-to-configuration.lock"
	// takeLock holds s-t-c's lock (fd 9) for the rest of the script, as
	// switch-to-configuration-ng does with a non-blocking flock.
	takeLock = "/bin/mkdir -p /run/nixos\nexec 9>" + stcLock + "\n/usr/bin/flock -n 9 || { echo 'Could not acquire lock' >&2; exit 11; }\n"
)

var toplevels = map[string]string{
	"ok": "#!/bin/sh\n" + takeLock +
		"echo \"activating the configuration... ($1)\"\n" +
		"echo \"NIXOS_INSTALL_BOOTLOADER=${NIXOS_INSTALL_BOOTLOADER:-unset} PATH=$PATH\"\n",
	"units-failed": "#!/bin/sh\n" + takeLock +
		"echo 'warning: the following units failed: broken.service' >&2\nexit 4\n",
	// Runs until it is killed or stopped.
	"hang": "#!/bin/sh\n" + takeLock + "echo 'starting the following units: wait-online.service'\n" +
		"exec /bin/sleep 600\n",
	// Exits 4 a moment after it started.
	"slow": "#!/bin/sh\n" + takeLock + "/bin/sleep 2\nexit 4\n",
}

func toplevel(name string) string { return "/nix/store/panther-test-" + name }

// bootNixOSLike boots a sandbox whose transient units get a PATH with only
// systemd's tools (the sandbox default, as on NixOS), holding the toplevels.
func bootNixOSLike(t *testing.T) *sandboxtest.Sandbox {
	t.Helper()
	files := map[string]string{"/var/lib/panther-test/.keep": ""}
	for name, script := range toplevels {
		files[toplevel(name)+"/bin/switch-to-configuration"] = script
	}
	return sandboxtest.Boot(t, sandboxtest.Options{Name: "activation", Files: files})
}

func newActivation(t *testing.T, s *sandboxtest.Sandbox) *activation.Activation {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
	a := activation.New(activation.Options{StopTimeout: 5 * time.Second}, activation.BusConnector(s.BusAddress()), log)
	t.Cleanup(a.Close)
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitEnd polls the unit until it no longer runs.
func waitEnd(t *testing.T, ctx context.Context, a *activation.Activation, unit string) deploy.UnitStatus {
	t.Helper()
	for {
		st, err := a.UnitStatus(ctx, unit)
		if err != nil {
			t.Fatalf("UnitStatus(%s): %v", unit, err)
		}
		if st.State != deploy.UnitRunning {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still runs: %v", unit, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readFile(t *testing.T, s *sandboxtest.Sandbox, p string) string {
	t.Helper()
	b, err := os.ReadFile(s.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOldWrapperFailsOnNixOSPath shows why the switch no longer runs in a
// shell wrapper: in a transient unit on NixOS (PATH = systemd's bin only)
// the wrapper's mv is not found, so its exit file never appears (the unit
// itself even succeeds) and the agent took the switch for killed.
func TestOldWrapperFailsOnNixOSPath(t *testing.T) {
	s := bootNixOSLike(t)
	const wrapper = `"$0" "$1"; rc=$?; printf '%s\n' "$rc" > "$2.tmp" && mv "$2.tmp" "$2"; exit $rc`
	out, err := s.Exec(t.Context(), "systemd-run", "--wait", "--quiet", "--collect", "--unit=old-wrapper",
		"--property=StandardOutput=append:/var/lib/panther-test/old.log",
		"--property=StandardError=append:/var/lib/panther-test/old.log",
		"--", "/bin/sh", "-c", wrapper, toplevel("ok")+"/bin/switch-to-configuration", "switch", "/var/lib/panther-test/switch.exit")
	if err != nil {
		t.Fatalf("systemd-run: %v: %s", err, out)
	}
	log := readFile(t, s, "/var/lib/panther-test/old.log")
	if !strings.Contains(log, "activating the configuration") || !strings.Contains(log, "mv: not found") {
		t.Errorf("old wrapper's log:\n%s\nwant the switch's output, then mv not found", log)
	}
	if _, err := os.Stat(s.Path("/var/lib/panther-test/switch.exit")); err == nil {
		t.Error("the old wrapper wrote its exit file")
	}
}

// TestSwitchUnitOnNixOSPath runs switch units over D-Bus on a systemd whose
// units get only systemd's tools on PATH, and reads how each ended from
// systemd.
func TestSwitchUnitOnNixOSPath(t *testing.T) {
	s := bootNixOSLike(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a := newActivation(t, s)
	const logPath = "/var/lib/panther-test/deploy.log"
	spec := func(unit, top string) deploy.UnitSpec {
		return deploy.UnitSpec{Unit: unit, Toplevel: toplevel(top), Mode: "switch", Output: logPath, Deadline: time.Minute}
	}
	lockFree := func(t *testing.T) {
		t.Helper()
		if out, err := s.Exec(ctx, "flock", "-n", stcLock, "true"); err != nil {
			t.Errorf("switch-to-configuration's lock is still held: %v %s", err, out)
		}
	}

	t.Run("exit 0 is kept until cleared", func(t *testing.T) {
		sp := spec("panther-switch-ok", "ok")
		sp.InstallBootloader = true
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		st := waitEnd(t, ctx, a, sp.Unit)
		if st.State != deploy.UnitExited || st.ExitCode != 0 {
			t.Fatalf("status = %+v, want exit 0", st)
		}
		log := readFile(t, s, logPath)
		if !strings.Contains(log, "activating the configuration... (switch)") || !strings.Contains(log, "NIXOS_INSTALL_BOOTLOADER=1 PATH=/usr/lib/panther-sandbox/systemd/bin\n") {
			t.Errorf("log:\n%s\nwant the switch's output, NIXOS_INSTALL_BOOTLOADER=1 and systemd's PATH", log)
		}
		// Still there a moment later: RemainAfterExit keeps a success.
		time.Sleep(200 * time.Millisecond)
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitExited {
			t.Errorf("status later = %+v, want the exit kept", st)
		}
		if err := a.ClearUnit(ctx, sp.Unit); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone {
			t.Errorf("status after ClearUnit = %+v, want gone", st)
		}
	})

	t.Run("exit 4", func(t *testing.T) {
		sp := spec("panther-switch-units-failed", "units-failed")
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		if st := waitEnd(t, ctx, a, sp.Unit); st.State != deploy.UnitExited || st.ExitCode != 4 {
			t.Fatalf("status = %+v, want exit 4", st)
		}
		if err := a.ClearUnit(ctx, sp.Unit); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone {
			t.Errorf("status of a failed unit after ClearUnit = %+v, want gone", st)
		}
		if !strings.Contains(readFile(t, s, logPath), "warning: the following units failed: broken.service") {
			t.Error("stderr is not in the log")
		}
	})

	t.Run("killed", func(t *testing.T) {
		sp := spec("panther-switch-killed", "hang")
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitRunning {
			t.Fatalf("status after start = %+v, want running", st)
		}
		s.Run(t, "systemctl", "kill", "--signal=SIGKILL", sp.Unit+".service")
		if st := waitEnd(t, ctx, a, sp.Unit); st.State != deploy.UnitKilled || st.Signal != "SIGKILL" {
			t.Fatalf("status = %+v, want killed by SIGKILL", st)
		}
		lockFree(t)
		a.ClearUnit(ctx, sp.Unit)
	})

	t.Run("deadline stops a hanging switch and frees the lock", func(t *testing.T) {
		sp := spec("panther-switch-hang", "hang")
		// Long enough to see the lock taken on a loaded machine.
		sp.Deadline = 5 * time.Second
		const started = "starting the following units: wait-online.service" // printed once the lock is held
		count := func() int {
			b, _ := os.ReadFile(s.Path(logPath))
			return strings.Count(string(b), started)
		}
		before := count()
		begin := time.Now()
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		// Wait for the script's word rather than probing the lock with
		// flock: a probe holding the lock at the wrong moment made the
		// switch exit 11 on a loaded machine.
		for count() == before {
			if time.Since(begin) > 4500*time.Millisecond {
				t.Fatalf("the switch did not take the lock:\n%s", readFile(t, s, logPath))
			}
			time.Sleep(20 * time.Millisecond)
		}
		// While it runs, another switch is refused by the lock.
		if _, err := s.Exec(ctx, "flock", "-n", stcLock, "true"); err == nil {
			t.Fatal("switch-to-configuration's lock is free while the switch runs")
		}
		st := waitEnd(t, ctx, a, sp.Unit)
		if st.State != deploy.UnitTimedOut || st.Deadline != 5*time.Second {
			t.Fatalf("status = %+v, want stopped at its 5s deadline", st)
		}
		if took := time.Since(begin); took < 5*time.Second || took > 30*time.Second {
			t.Errorf("stopped after %v, want soon after 5s", took)
		}
		lockFree(t)
		a.ClearUnit(ctx, sp.Unit)
	})

	t.Run("exit read by a restarted agent", func(t *testing.T) {
		sp := spec("panther-switch-slow", "slow")
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		a.Close() // the agent stops while the switch runs
		time.Sleep(2500 * time.Millisecond)
		again := newActivation(t, s) // and a new one starts after it ended
		if st := waitEnd(t, ctx, again, sp.Unit); st.State != deploy.UnitExited || st.ExitCode != 4 {
			t.Fatalf("status read by the new agent = %+v, want exit 4", st)
		}
		again.ClearUnit(ctx, sp.Unit)
	})

	t.Run("interrupted by a reboot", func(t *testing.T) {
		sp := spec("panther-switch-rebooted", "hang")
		if err := a.StartUnit(ctx, sp); err != nil {
			t.Fatal(err)
		}
		s.Reboot(t)
		after := newActivation(t, s) // the bus address changes with the boot
		if st, err := after.UnitStatus(ctx, sp.Unit); err != nil || st.State != deploy.UnitGone {
			t.Fatalf("status after the reboot = %+v, %v; want gone", st, err)
		}
	})
	if t.Failed() {
		t.Log(s.Journal(ctx, ""))
	}
}
