package client

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// StallTimeout is how long an event stream from an agent that sends
// heartbeats may stay silent before it counts as broken. gRPC keepalive
// alone takes 10 s or more to notice a dead agent.
const StallTimeout = 6 * time.Second

// watchedStream hides heartbeats from the caller and, once the agent has
// shown it sends them, ends the stream when they stop.
type watchedStream struct {
	recv    func() (*agentv1.DeployEvent, error)
	cancel  context.CancelFunc
	stall   time.Duration
	timer   *time.Timer
	stalled atomic.Bool
}

func watch(ctx context.Context, open func(ctx context.Context) (func() (*agentv1.DeployEvent, error), error)) (Stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	recv, err := open(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &watchedStream{recv: recv, cancel: cancel, stall: StallTimeout}, nil
}

// Recv returns the next event that is not a heartbeat.
func (w *watchedStream) Recv() (*agentv1.DeployEvent, error) {
	for {
		ev, err := w.recv()
		if err != nil {
			if w.timer != nil {
				w.timer.Stop()
			}
			w.cancel()
			if w.stalled.Load() {
				return nil, status.Errorf(codes.Unavailable, "no word from the agent for %v", w.stall)
			}
			return nil, err
		}
		if w.timer != nil {
			w.timer.Reset(w.stall)
		}
		if ev.GetHeartbeat() != nil {
			if w.timer == nil {
				w.timer = time.AfterFunc(w.stall, func() {
					w.stalled.Store(true)
					w.cancel()
				})
			}
			continue
		}
		return ev, nil
	}
}
