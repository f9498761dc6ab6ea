package activation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/deploy"
)

// TestDeadmanTimerOnSystemd arms the independent dead-man (a transient
// timer and its service) over D-Bus on a real systemd whose units have only
// systemd's tools on PATH: the timer alone runs the previous system's
// switch at the deadline; the agent's start of the same service joins it
// (exactly one run, whoever is first); a re-arm moves the deadline; a
// hold stops the timer for good.
func TestDeadmanTimerOnSystemd(t *testing.T) {
	s := bootNixOSLike(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a := newActivation(t, s)
	spec := func(unit string) deploy.UnitSpec {
		return deploy.UnitSpec{Unit: unit, Toplevel: toplevel("ok"), Mode: "switch", Output: "/var/lib/panther-test/" + unit + ".log", Deadline: time.Minute}
	}
	runs := func(sp deploy.UnitSpec) int {
		b, _ := s.Exec(ctx, "cat", sp.Output)
		return strings.Count(string(b), "activating the configuration... (switch)")
	}

	t.Run("fires without anyone", func(t *testing.T) {
		sp := spec("panther-deadman-fire")
		armed := time.Now()
		if err := a.ArmDeadman(ctx, sp, 700*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got := s.Run(t, "systemctl", "show", "-p", "ActiveState", "--value", sp.Unit+".timer"); strings.TrimSpace(got) != "active" {
			t.Fatalf("timer is %q, want active", got)
		}
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone {
			t.Fatalf("service before the deadline = %+v, want not started", st)
		}
		for {
			if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone {
				break
			}
			if time.Since(armed) > 10*time.Second {
				t.Fatal("the timer did not start the service")
			}
			time.Sleep(10 * time.Millisecond)
		}
		late := time.Since(armed) - 700*time.Millisecond
		t.Logf("the service started %v after the deadline", late)
		if late < 0 || late > time.Second {
			t.Errorf("the service started %v after the deadline, want within 1s", late)
		}
		if st := waitEnd(t, ctx, a, sp.Unit); st.State != deploy.UnitExited || st.ExitCode != 0 {
			t.Fatalf("status = %+v, want exit 0", st)
		}
		log := readFile(t, s, sp.Output)
		if !strings.Contains(log, "PATH=/usr/lib/panther-sandbox/systemd/bin\n") {
			t.Errorf("log:\n%s\nwant the switch's output with systemd's PATH only", log)
		}
		// The agent, late: its start joins the run that happened; the
		// hold says the timer fired.
		fired, err := a.HoldDeadman(ctx, sp.Unit)
		if err != nil || !fired {
			t.Errorf("HoldDeadman = %v, %v; want fired", fired, err)
		}
		if err := a.StartDeadman(ctx, sp); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if n := runs(sp); n != 1 {
			t.Errorf("the previous system's switch ran %d times, want once", n)
		}
		if err := a.ClearDeadman(ctx, sp.Unit); err != nil {
			t.Fatal(err)
		}
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone {
			t.Errorf("service after ClearDeadman = %+v", st)
		}
	})

	t.Run("agent first, then the timer: one run", func(t *testing.T) {
		sp := spec("panther-deadman-both")
		if err := a.ArmDeadman(ctx, sp, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := a.StartDeadman(ctx, sp); err != nil {
			t.Fatal(err)
		}
		waitEnd(t, ctx, a, sp.Unit)
		time.Sleep(time.Second) // the timer fires on the ended service
		if n := runs(sp); n != 1 {
			t.Errorf("the previous system's switch ran %d times, want once", n)
		}
		a.ClearDeadman(ctx, sp.Unit)
	})

	t.Run("hold, then the agent starts it", func(t *testing.T) {
		sp := spec("panther-deadman-hold")
		if err := a.ArmDeadman(ctx, sp, time.Hour); err != nil {
			t.Fatal(err)
		}
		fired, err := a.HoldDeadman(ctx, sp.Unit)
		if err != nil || fired {
			t.Fatalf("HoldDeadman = %v, %v; want not fired", fired, err)
		}
		if out, _ := s.Exec(ctx, "systemctl", "show", "-p", "ActiveState", "--value", sp.Unit+".timer"); strings.TrimSpace(string(out)) == "active" {
			t.Error("the timer still runs after the hold")
		}
		if err := a.StartDeadman(ctx, sp); err != nil {
			t.Fatal(err)
		}
		if st := waitEnd(t, ctx, a, sp.Unit); st.State != deploy.UnitExited || st.ExitCode != 0 {
			t.Fatalf("status = %+v, want exit 0", st)
		}
		if n := runs(sp); n != 1 {
			t.Errorf("ran %d times, want once", n)
		}
		a.ClearDeadman(ctx, sp.Unit)
	})

	t.Run("re-arm moves the deadline", func(t *testing.T) {
		sp := spec("panther-deadman-rearm")
		if err := a.ArmDeadman(ctx, sp, 600*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := a.ArmDeadman(ctx, sp, time.Hour); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if st, _ := a.UnitStatus(ctx, sp.Unit); st.State != deploy.UnitGone || runs(sp) != 0 {
			t.Errorf("the first deadline still fired: %+v", st)
		}
		if err := a.ClearDeadman(ctx, sp.Unit); err != nil {
			t.Fatal(err)
		}
		if out, _ := s.Exec(ctx, "systemctl", "show", "-p", "LoadState", "--value", sp.Unit+".timer"); strings.TrimSpace(string(out)) == "loaded" {
			t.Error("the timer is still loaded after ClearDeadman")
		}
	})
}
