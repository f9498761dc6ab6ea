package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// replayStream is a client.Stream that yields events, then err.
type replayStream struct {
	evs []*agentv1.DeployEvent
	err error
}

func (s *replayStream) Recv() (*agentv1.DeployEvent, error) {
	if len(s.evs) == 0 {
		return nil, s.err
	}
	ev := s.evs[0]
	s.evs = s.evs[1:]
	return ev, nil
}

// TestFollowReattachShowsEventsOnce follows a stream that breaks, then the
// Watch that replays the deployment from its start: every event is shown
// once, and the replayed awaiting event still counts.
func TestFollowReattachShowsEventsOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	started := &agentv1.DeployEvent{Time: at(0), Event: &agentv1.DeployEvent_PhaseStarted{PhaseStarted: &agentv1.PhaseStarted{Phase: agentv1.Phase_PHASE_SWITCH}}}
	logLine := &agentv1.DeployEvent{Time: at(time.Millisecond), Event: &agentv1.DeployEvent_Log{Log: &agentv1.LogLine{Line: "setting link eth0 down"}}}
	awaiting := &agentv1.DeployEvent{Time: at(time.Second), Event: &agentv1.DeployEvent_AwaitingConfirmation{AwaitingConfirmation: &agentv1.AwaitingConfirmation{Deadline: at(9 * time.Second)}}}
	result := &agentv1.DeployEvent{Time: at(10 * time.Second), Event: &agentv1.DeployEvent_Result{Result: &agentv1.Result{Outcome: agentv1.Outcome_OUTCOME_ROLLED_BACK}}}

	tests := []struct {
		name  string
		json  bool
		count func(out string) int
	}{
		{"json", true, func(out string) int { return strings.Count(out, `"host":"alpha"`) }},
		{"text", false, func(out string) int { return strings.Count(out, "alpha: ") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := &CLI{io: IO{Stdout: &out}}
			c.g.json = tt.json
			r := &reporter{c: c, host: "alpha"}
			f := &followed{}
			err := r.follow(&replayStream{evs: []*agentv1.DeployEvent{started, logLine}, err: status.Error(codes.Unavailable, "link down")}, f)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("first stream: %v", err)
			}
			if err := r.follow(&replayStream{evs: []*agentv1.DeployEvent{started, logLine, awaiting}, err: io.EOF}, f); err != nil {
				t.Fatalf("replay: %v", err)
			}
			if f.awaiting == nil {
				t.Fatal("the replayed awaiting event was lost")
			}
			// A later Watch replays everything up to the result.
			g := &followed{}
			if err := r.follow(&replayStream{evs: []*agentv1.DeployEvent{started, logLine, awaiting, result}, err: io.EOF}, g); err != nil {
				t.Fatalf("second replay: %v", err)
			}
			if g.result.GetOutcome() != agentv1.Outcome_OUTCOME_ROLLED_BACK {
				t.Fatalf("result %v", g.result)
			}
			if n := tt.count(out.String()); n != 4 {
				t.Errorf("%d lines shown, want 4 (one per event):\n%s", n, out.String())
			}
		})
	}
}
