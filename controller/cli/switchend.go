package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/pantheros/panther/controller/rollout"
)

// switchEnd keeps "switch done in …" until the switch has really ended.
// The agent finishes its switch phase once the transient unit has started;
// the activation output and the unit's exit follow. Shown as it comes, the
// line would claim the switch was over before its output. So the line is
// held and printed, with the time from the phase's start, right after the
// agent's "switch-to-configuration … exited N" line, or before the next
// event that is not switch output (health, a warning, the result).
type switchEnd struct {
	started time.Time     // the switch phase's start, zero if not seen
	holding bool          // a "switch done" waits
	held    time.Duration // its own elapsed time, used without a start time
}

// observe says whether to hold ev (not show it now) and what to print
// before and after it.
func (s *switchEnd) observe(ev rollout.Event) (hold bool, before, after string) {
	at := ev.Time
	if at.IsZero() {
		at = time.Now()
	}
	switch ev.Kind {
	case rollout.EventPhaseStarted:
		if ev.Phase == rollout.PhaseSwitch {
			s.started = at
		}
	case rollout.EventPhaseFinished:
		if ev.Phase == rollout.PhaseSwitch && ev.OK {
			s.holding, s.held = true, ev.Elapsed
			return true, "", ""
		}
	case rollout.EventLog:
		if !s.holding || ev.Phase != rollout.PhaseSwitch {
			break
		}
		if strings.HasPrefix(ev.Line, "switch-to-configuration ") && strings.Contains(ev.Line, " exited ") {
			return false, "", s.release(at)
		}
		return false, "", "" // activation output: the switch goes on
	}
	if s.holding {
		return false, s.release(at), ""
	}
	return false, "", ""
}

func (s *switchEnd) release(at time.Time) string {
	el := s.held
	if !s.started.IsZero() && at.After(s.started) {
		el = at.Sub(s.started).Round(time.Millisecond)
	}
	s.holding = false
	return fmt.Sprintf("    %s done in %s", rollout.PhaseSwitch, el)
}
