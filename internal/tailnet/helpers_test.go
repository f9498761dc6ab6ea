package tailnet_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/tailnettest"
)

const rpcPort = 50051

// healthServer stands in for the agent's service: the gRPC health service
// has a unary call (Check) and a server stream (Watch).
type healthServer struct {
	healthpb.UnimplementedHealthServer

	mu  sync.Mutex
	ids []tailnet.Identity

	watching chan struct{}  // receives when a Watch stream is open
	watchEnd chan time.Time // receives when a Watch stream's context ends
}

func newHealthServer() *healthServer {
	return &healthServer{watching: make(chan struct{}, 8), watchEnd: make(chan time.Time, 8)}
}

func (s *healthServer) record(ctx context.Context) {
	id, ok := tailnet.IdentityFromContext(ctx)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
}

func (s *healthServer) identities() []tailnet.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tailnet.Identity(nil), s.ids...)
}

func (s *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.record(ctx)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *healthServer) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	s.record(stream.Context())
	if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	s.watching <- struct{}{}
	<-stream.Context().Done()
	s.watchEnd <- time.Now()
	return stream.Context().Err()
}

// serveOptions picks what a test server runs with.
type serveOptions struct {
	authz     tailnet.AuthorizerConfig
	keepalive bool
	log       hclog.Logger
}

// serve runs the health service on n's tailnet port rpcPort until the test
// ends.
func serve(t testing.TB, n *tailnet.Node, o serveOptions) *healthServer {
	t.Helper()
	if o.log == nil {
		o.log = tailnettest.Logger(t)
	}
	authz, err := tailnet.NewAuthorizer(o.authz, n, o.log)
	if err != nil {
		t.Fatalf("NewAuthorizer: %v", err)
	}
	opts := authz.ServerOptions()
	if o.keepalive {
		opts = append(opts, tailnet.ServerKeepalive()...)
	}
	ln, err := n.Listen("tcp", fmt.Sprintf(":%d", rpcPort))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	gs := grpc.NewServer(opts...)
	hs := newHealthServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return hs
}

// client returns a health client reaching host's rpcPort through d.
func client(t testing.TB, d tailnet.Dialer, host string) healthpb.HealthClient {
	t.Helper()
	c, cc := dial(t, d, host)
	t.Cleanup(func() { cc.Close() })
	return c
}

// check makes one unary call and returns its error.
func check(ctx context.Context, c healthpb.HealthClient) error {
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func bufferLogger(buf *logBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})
}

// waitFor polls cond every 20ms until it holds or the test's patience
// (d) runs out.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial returns a health client reaching host's rpcPort through d and its
// connection, which the caller closes.
func dial(t testing.TB, d tailnet.Dialer, host string) (healthpb.HealthClient, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpc.NewClient(tailnet.Target(net.JoinHostPort(host, fmt.Sprint(rpcPort))), tailnet.DialOptions(d)...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	return healthpb.NewHealthClient(cc), cc
}
