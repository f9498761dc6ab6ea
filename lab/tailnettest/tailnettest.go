// Package tailnettest runs a whole tailnet inside a test process — a
// coordination server, a DERP relay and a STUN server from lab/labnet — and
// joins internal/tailnet nodes to it, for integration tests of anything that
// talks over the tailnet.
package tailnettest

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"tailscale.com/net/netns"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/logger"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/labnet"
)

// LogLevelEnv names the environment variable that sets the level of
// [Logger] (trace, debug, info, warn, error). Default: info. At trace,
// tsnet's backend logs are shown too.
const LogLevelEnv = "PANTHER_TEST_LOG"

// MagicDNSDomain is the MagicDNS suffix of nodes on a test tailnet.
const MagicDNSDomain = "panther-test.ts.net"

// upTimeout bounds how long [Tailnet.Node] waits for a node to come up.
const upTimeout = 60 * time.Second

// Options configure a test tailnet.
type Options struct {
	// BindAll makes control listen on all interfaces and control, DERP
	// and STUN advertise an address of the machine's own interface instead
	// of 127.0.0.1, so that nodes in another network namespace can reach
	// them. Default: false (everything on 127.0.0.1).
	BindAll bool

	// TagOwners lists the tags nodes may carry (keys) and which tags may
	// grant them (values), as in a tailnet policy. Nodes get the tags they
	// ask for when they first register. Default: an empty policy, which
	// still grants requested tags at registration.
	TagOwners map[string][]string
}

// Tailnet is an in-process tailnet. Everything stops when the test that
// created it ends.
type Tailnet struct {
	// ControlURL is the coordination server URL for [tailnet.Config].
	ControlURL string
	// Addr is the host address control, DERP and STUN are reached on.
	Addr string
	// Control is the coordination server, for tests that inspect nodes.
	Control *testcontrol.Server
	// DERPMap is the tailnet's single-region relay map.
	DERPMap *tailcfg.DERPMap
}

// New starts a coordination server, a DERP relay and a STUN server (see
// lab/labnet) and returns the tailnet they form; it stops when the test
// ends. It turns off tailscale's netns socket marking for the process
// (restored on cleanup), so tests using it must not run in parallel with
// tests that need it.
func New(t testing.TB, opts Options) *Tailnet {
	t.Helper()
	netns.SetEnabled(false)
	t.Cleanup(func() { netns.SetEnabled(true) })

	lo := labnet.Options{
		Addr:           "127.0.0.1",
		TagOwners:      opts.TagOwners,
		MagicDNSDomain: MagicDNSDomain,
		Logf:           tbLogf(t, hclog.Debug),
	}
	if opts.BindAll {
		ip, err := HostAddr()
		if err != nil {
			t.Skipf("tailnettest: BindAll needs a non-loopback IPv4 address on this machine: %v", err)
		}
		lo.Addr = ip.String()
		lo.ControlListen = "0.0.0.0:0"
	}
	n, err := labnet.Start(context.Background(), lo)
	if err != nil {
		t.Fatalf("tailnettest: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Logf("tailnettest: closing the tailnet: %v", err)
		}
	})
	tn := &Tailnet{
		ControlURL: n.ControlURL,
		Addr:       n.Addr,
		Control:    n.Control,
		DERPMap:    n.DERPMap,
	}
	t.Logf("tailnettest: control %s, DERP %s", tn.ControlURL, tn.Addr)
	return tn
}

// Config returns a node config on this tailnet with a fresh state dir
// under t.TempDir(). Tests that restart a node reuse its StateDir.
func (tn *Tailnet) Config(t testing.TB, name string, tags ...string) tailnet.Config {
	t.Helper()
	return tailnet.Config{
		Hostname:        name,
		StateDir:        filepath.Join(t.TempDir(), name),
		ControlURL:      tn.ControlURL,
		Tags:            tags,
		NoLogsNoSupport: true,
	}
}

// Node returns a node called name carrying tags, up and ready on this
// tailnet; it is closed when the test ends.
func (tn *Tailnet) Node(t testing.TB, name string, tags ...string) *tailnet.Node {
	t.Helper()
	return tn.Start(t, tn.Config(t, name, tags...))
}

// Start builds a node from cfg and brings it up; it is closed when the test
// ends. cfg.ControlURL should point at this tailnet.
func (tn *Tailnet) Start(t testing.TB, cfg tailnet.Config) *tailnet.Node {
	t.Helper()
	n, err := tailnet.New(cfg, Logger(t))
	if err != nil {
		t.Fatalf("tailnettest: node %s: %v", cfg.Hostname, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("tailnettest: closing node %s: %v", cfg.Hostname, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	if err := n.Up(ctx); err != nil {
		t.Fatalf("tailnettest: node %s up: %v", cfg.Hostname, err)
	}
	return n
}

// HostAddr returns an IPv4 address of one of the machine's own up,
// non-loopback interfaces: the address a process in another network
// namespace can reach this one on (see labnet.HostAddr).
func HostAddr() (net.IP, error) { return labnet.HostAddr() }

// Logger returns an hclog logger writing to t.Log, at the level named by
// the PANTHER_TEST_LOG environment variable (default info).
func Logger(t testing.TB) hclog.Logger {
	t.Helper()
	level := hclog.Info
	if v := os.Getenv(LogLevelEnv); v != "" {
		if l := hclog.LevelFromString(v); l != hclog.NoLevel {
			level = l
		}
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   t.Name(),
		Level:  level,
		Output: tbWriter{t},
	})
}

// tbLogf adapts t.Logf for tailscale's loggers, printing only when the
// test log level is at most min.
func tbLogf(t testing.TB, min hclog.Level) logger.Logf {
	l := Logger(t)
	if l.GetLevel() > min {
		return logger.Discard
	}
	return func(format string, args ...any) {
		t.Helper()
		t.Logf(format, args...)
	}
}

// tbWriter sends each write to t.Log; it drops writes after the test
// ended, when goroutines of closing nodes may still log.
type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // t.Log panics after the test completed
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = tbWriter{}
