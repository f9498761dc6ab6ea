package tailnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestLimiterCapsStreamsPerPeer: one keyless tagged peer opened 2,000
// Logs(follow) streams and every one was accepted. Now the per-peer cap
// refuses the first stream over it with ResourceExhausted naming the limit,
// other peers are not affected, and a closed stream frees its place.
func TestLimiterCapsStreamsPerPeer(t *testing.T) {
	local := ctlID
	local.Addr = netip.MustParseAddr("127.0.0.1")
	a, _ := newTestAuthorizer(t, AuthorizerConfig{AllowedTags: []string{"tag:panther-controller"}}, NewRecordingWhoIs(local))
	l := NewLimiter(PeerLimits{MaxCallsPerPeer: 5, CallsPerSecond: -1}, nil)
	gs := grpc.NewServer(ServerOptions(a, l)...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancels []context.CancelFunc
	for i := range 5 {
		sctx, scancel := context.WithCancel(ctx)
		cancels = append(cancels, scancel)
		st, err := client.Watch(sctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	st, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "5 calls open, the limit per peer") {
		t.Fatalf("stream over the cap: %v, want ResourceExhausted naming the limit", err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("unary call over the cap: %v, want ResourceExhausted", err)
	}
	cancels[0]()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open(local.NodeName) > 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("after a stream closed: %v", err)
	}
	for _, c := range cancels {
		c()
	}
}

func TestLimiterRateLimitsPerPeer(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(PeerLimits{MaxCallsPerPeer: -1, CallsPerSecond: 2, CallBurst: 3, Now: func() time.Time { return now }}, nil)
	call := func(id Identity) error {
		ctx := withIdentity(peerCtx(id.Addr), id)
		_, err := l.UnaryInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/x/Status"},
			func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	for i := range 3 {
		if err := call(ctlID); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	err := call(ctlID)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "rate limit per peer (2 per second, bursts of 3)") {
		t.Fatalf("call over the burst: %v, want ResourceExhausted naming the rate limit", err)
	}
	if err := call(aliceID); err != nil {
		t.Fatalf("another peer: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := call(ctlID); err != nil {
		t.Fatalf("after a token refilled: %v", err)
	}
	if err := call(ctlID); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second call after one token: %v", err)
	}
	// Idle peers with full buckets are forgotten: the map does not grow.
	now = now.Add(time.Hour)
	for i := range 100 {
		now = now.Add(time.Minute)
		id := Identity{NodeName: fmt.Sprintf("n%d", i), Addr: netip.AddrFrom4([4]byte{100, 64, 1, byte(i)})}
		if err := call(id); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Hour)
	if err := call(ctlID); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	n := len(l.peers)
	l.mu.Unlock()
	if n > 64 {
		t.Errorf("limiter remembers %d idle peers", n)
	}
}

func TestLimiterConcurrentCallsRelease(t *testing.T) {
	l := NewLimiter(PeerLimits{MaxCallsPerPeer: 3, CallsPerSecond: -1}, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ctx := withIdentity(peerCtx(ctlID.Addr), ctlID)
			_, _ = l.UnaryInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/x/Status"},
				func(context.Context, any) (any, error) { time.Sleep(time.Millisecond); return nil, nil })
		})
	}
	wg.Wait()
	if n := l.Open(ctlID.NodeName); n != 0 {
		t.Errorf("%d calls still counted open", n)
	}
}
