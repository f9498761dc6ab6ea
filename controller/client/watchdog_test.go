package client

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

func beat() *agentv1.DeployEvent {
	return &agentv1.DeployEvent{Event: &agentv1.DeployEvent_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}
}

func logEv(s string) *agentv1.DeployEvent {
	return &agentv1.DeployEvent{Event: &agentv1.DeployEvent_Log{Log: &agentv1.LogLine{Line: s}}}
}

// A stream whose agent goes silent after its heartbeats began is ended as
// Unavailable within the stall timeout; heartbeats never reach the caller.
func TestWatchdogEndsASilentStream(t *testing.T) {
	evs := make(chan *agentv1.DeployEvent, 4)
	evs <- beat()
	evs <- logEv("building")
	st, err := watch(context.Background(), func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error) {
		return func() (*agentv1.DeployEvent, error) {
			select {
			case ev := <-evs:
				return ev, nil
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.(*watchedStream).stall = 100 * time.Millisecond
	ev, err := st.Recv()
	if err != nil || ev.GetLog().GetLine() != "building" {
		t.Fatalf("first event = %v, %v; want the log line (the heartbeat hidden)", ev, err)
	}
	start := time.Now()
	_, err = st.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("silent stream: %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("noticed after %v", d)
	}
}

// An agent that never sends heartbeats (an older one) is never cut off.
func TestWatchdogNeedsAFirstHeartbeat(t *testing.T) {
	n := 0
	st, _ := watch(context.Background(), func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error) {
		return func() (*agentv1.DeployEvent, error) {
			n++
			if n == 1 {
				time.Sleep(150 * time.Millisecond)
				return logEv("slow"), nil
			}
			return nil, io.EOF
		}, nil
	})
	st.(*watchedStream).stall = 50 * time.Millisecond
	if ev, err := st.Recv(); err != nil || ev.GetLog() == nil {
		t.Fatalf("Recv = %v, %v", ev, err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("end = %v, want EOF", err)
	}
}
