package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/journal"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// logsStream collects what Logs sends.
type logsStream struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	data []byte
}

func (s *logsStream) Context() context.Context { return s.ctx }
func (s *logsStream) Send(m *agentv1.LogsResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = append(s.data, m.Data...)
	return nil
}

// TestLogsFollowEndsWhenIdle: a followed deployment that never ends (its
// record stuck in a non-final state) used to be polled every 200 ms for as
// long as the client kept the stream open. The follow now ends, with a
// status saying why, once the log stayed quiet for followIdleLimit.
func TestLogsFollowEndsWhenIdle(t *testing.T) {
	j, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Create(&journal.Record{ID: "d1", Action: "switch", Host: "alpha", State: journal.StateRunning}); err != nil {
		t.Fatal(err)
	}
	f, err := j.OpenLog("d1")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("building\n")
	f.Close()

	var mu sync.Mutex
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(30 * time.Minute) // every look at the clock: 30 min later
		return clock
	}
	s := New(Config{Host: "alpha", Journal: j, Now: now})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := &logsStream{ctx: ctx}
	start := time.Now()
	err = s.Logs(&agentv1.LogsRequest{DeploymentId: "d1", Follow: true}, st)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Logs(follow) of a quiet, unfinished deployment: %v, want DeadlineExceeded", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the follow only ended with the client (%v)", time.Since(start))
	}
	if string(st.data) != "building\n" {
		t.Errorf("sent %q", st.data)
	}
}
