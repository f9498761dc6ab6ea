package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/rollout"
)

// TestLiveLines drives the terminal display the way a deploy does: phase
// and result lines are printed above the live lines, log lines only update
// the host's line, and the log file gets everything.
func TestLiveLines(t *testing.T) {
	var out, logf bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	lv := newLive(&out)
	r := &reporter{c: c, host: "alpha", logw: &logf, live: lv}
	r.hl = lv.add("alpha")
	r.event(rollout.Event{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseBuild})
	r.event(rollout.Event{Kind: rollout.EventLog, Line: "building foo.drv"})
	if got := r.hl.text(); !strings.Contains(got, "build") || !strings.Contains(got, "building foo.drv") {
		t.Errorf("live line = %q, want phase and last log line", got)
	}
	r.event(rollout.Event{Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseBuild, OK: true, Elapsed: time.Second})
	r.hl.finish("confirmed", true)
	lv.wait()
	s := out.String()
	if !strings.Contains(s, "alpha: ==> build") || !strings.Contains(s, "build done in 1s") || !strings.Contains(s, "confirmed") {
		t.Errorf("terminal output lacks phase lines or the result:\n%q", s)
	}
	if strings.Contains(s, "alpha:     │ building foo.drv") {
		t.Error("log lines should not scroll on a terminal")
	}
	if !strings.Contains(logf.String(), "building foo.drv") {
		t.Error("the log file lost the build line")
	}
}

// Two runs for the same host and mode in the same second get their own logs.
func TestOpenLogNeverShares(t *testing.T) {
	c := &CLI{io: IO{Stderr: &bytes.Buffer{}}}
	dir := t.TempDir()
	f1, p1 := c.openLog(dir, "switch", "alpha")
	f2, p2 := c.openLog(dir, "switch", "alpha")
	defer f1.Close()
	defer f2.Close()
	if p1 == "" || p2 == "" || p1 == p2 {
		t.Errorf("log paths %q and %q", p1, p2)
	}
}
