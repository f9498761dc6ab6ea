package tailnet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tailscale.com/tsnet"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/tailnettest"
)

// restartBudget is what a restart from persisted state may take to its
// first RPC. Before the fixes in this package it took 5.2 s (WireGuard's
// handshake retry) on most restarts and up to 21 s on some; after, tens of
// milliseconds, a few hundred on a loaded machine.
const restartBudget = 2 * time.Second

// startAndCall brings up a node from cfg, makes one RPC to the agent and
// closes everything the way pantherctl does on exit. It returns the time
// from New to the RPC's answer and the UDP port the node used.
func startAndCall(t testing.TB, cfg tailnet.Config) (time.Duration, uint16) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	n, err := tailnet.New(cfg, tailnettest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	c, cc := dial(t, n, "agent")
	defer cc.Close()
	if err := check(ctx, c); err != nil {
		t.Fatalf("first RPC: %v", err)
	}
	return time.Since(start), n.UDPPort()
}

// TestRestartFromPersistedState restarts a controller node from its state
// dir several times in a row, as back-to-back pantherctl runs do, and
// wants the UDP port kept on every restart and the typical (median) first
// RPC within restartBudget. Without this package's fixes nearly every
// restart waits out WireGuard's 5 s handshake retry, so the median catches
// a regression; a single restart can still lose the race on a loaded
// machine (seen once in CI: one of six at 5.18 s), which is a latency
// outlier, not a failure — its cost is tracked by BenchmarkColdStartPersisted.
func TestRestartFromPersistedState(t *testing.T) {
	tn := tailnettest.New(t, tailnettest.Options{})
	agent := tn.Node(t, "agent", agentTag)
	serve(t, agent, serveOptions{authz: tailnet.AuthorizerConfig{AllowedTags: []string{controllerTag}}, keepalive: true})

	cfg := tn.Config(t, "ctl", controllerTag)
	first, port := startAndCall(t, cfg)
	t.Logf("first start (registers): first RPC after %v, UDP port %d", first.Round(time.Millisecond), port)

	var took []time.Duration
	for i := range 6 {
		d, p := startAndCall(t, cfg)
		t.Logf("restart %d: first RPC after %v", i+1, d.Round(time.Millisecond))
		if p != port {
			t.Errorf("restart %d bound UDP port %d, want the remembered %d", i+1, p, port)
		}
		took = append(took, d)
	}
	slices.Sort(took)
	median := took[len(took)/2]
	t.Logf("restarts: median %v, max %v", median.Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if median > restartBudget {
		t.Errorf("median restart: first RPC after %v, want under %v (all: %v)", median, restartBudget, took)
	}

	eph := tn.Config(t, "eph", controllerTag)
	eph.Ephemeral = true
	d, _ := startAndCall(t, eph)
	t.Logf("fresh ephemeral node for comparison: first RPC after %v", d.Round(time.Millisecond))
}

// BenchmarkColdStartPersisted measures a cold start from persisted state
// to the first answered RPC, back to back, as repeated pantherctl runs.
// "tailnet" is this package; "tsnet-defaults" is a bare tsnet.Server with
// the same state dir reuse, for comparison (expect ~5 s per op there).
//
//	go test -run '^$' -bench ColdStartPersisted -benchtime 20x ./internal/tailnet
func BenchmarkColdStartPersisted(b *testing.B) {
	tn := tailnettest.New(b, tailnettest.Options{})
	agent := tn.Node(b, "agent", agentTag)
	serve(b, agent, serveOptions{authz: tailnet.AuthorizerConfig{AllowedTags: []string{controllerTag}}, keepalive: true})

	b.Run("tailnet", func(b *testing.B) {
		cfg := tn.Config(b, "ctl", controllerTag)
		startAndCall(b, cfg) // registers; not measured
		b.ResetTimer()
		for range b.N {
			startAndCall(b, cfg)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/first-rpc")
	})

	b.Run("tsnet-defaults", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "bare")
		one := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s := &tsnet.Server{Dir: dir, Hostname: "bare", ControlURL: tn.ControlURL, AdvertiseTags: []string{controllerTag}, UserLogf: func(string, ...any) {}}
			defer s.Close()
			if _, err := s.Up(ctx); err != nil {
				b.Fatal(err)
			}
			c, cc := dial(b, s, fmt.Sprintf("agent.%s", tailnettest.MagicDNSDomain))
			defer cc.Close()
			if err := check(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		one()
		b.ResetTimer()
		for range b.N {
			one()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/first-rpc")
	})
}
