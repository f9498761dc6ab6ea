package cli

import (
	"fmt"
	"strings"
	"time"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
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
func (s *switchEnd) observe(ev *agentv1.DeployEvent) (hold bool, before, after string) {
	at := ev.GetTime().AsTime()
	if ev.GetTime() == nil {
		at = time.Now()
	}
	switch e := ev.Event.(type) {
	case *agentv1.DeployEvent_PhaseStarted:
		if e.PhaseStarted.Phase == agentv1.Phase_PHASE_SWITCH {
			s.started = at
		}
	case *agentv1.DeployEvent_PhaseFinished:
		if e.PhaseFinished.Phase == agentv1.Phase_PHASE_SWITCH && e.PhaseFinished.Ok {
			s.holding, s.held = true, e.PhaseFinished.Elapsed.AsDuration()
			return true, "", ""
		}
	case *agentv1.DeployEvent_Log:
		if !s.holding || e.Log.Phase != agentv1.Phase_PHASE_SWITCH {
			break
		}
		if strings.HasPrefix(e.Log.Line, "switch-to-configuration ") && strings.Contains(e.Log.Line, " exited ") {
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
	return fmt.Sprintf("    %s done in %s", phaseName(agentv1.Phase_PHASE_SWITCH), el)
}
