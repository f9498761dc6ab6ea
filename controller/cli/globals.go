package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/defaults"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
)

// globals are the flags every command takes.
type globals struct {
	key             string
	via             string
	stateDir        string
	controlURL      string
	authKeyFile     string
	hostname        string
	tags            string
	port            int
	noLogsNoSupport bool
	logLevel        string
	json            bool
}

func (g *globals) register(fs *flag.FlagSet) {
	dir := defaultConfigDir()
	host, _ := os.Hostname()
	fs.StringVar(&g.key, "key", filepath.Join(dir, "key"), "operator's private signing key (create it with 'pantherctl keygen')")
	fs.StringVar(&g.via, "via", "tsnet", "how to reach the tailnet: tsnet (pantherctl's own node) or system (the machine's tailscaled)")
	fs.StringVar(&g.stateDir, "state-dir", filepath.Join(dir, "tsnet"), "state of pantherctl's own tailnet node (kept for fast restarts); one pantherctl run at a time uses it")
	fs.StringVar(&g.controlURL, "control-url", "", "tailnet coordination server (default Tailscale's; a Headscale URL works)")
	fs.StringVar(&g.authKeyFile, "auth-key-file", "", "file with an auth key for the first login of pantherctl's node")
	fs.StringVar(&g.hostname, "hostname", "pantherctl-"+host, "pantherctl's name on the tailnet")
	fs.StringVar(&g.tags, "tags", "tag:panther-controller", "comma-separated tags pantherctl's node advertises")
	fs.IntVar(&g.port, "port", defaults.AgentPort, "the agents' tailnet gRPC port")
	fs.BoolVar(&g.noLogsNoSupport, "no-logs-no-support", false, "do not upload tailnet client logs to Tailscale (default true with --control-url)")
	fs.StringVar(&g.logLevel, "log-level", "warn", "pantherctl's own log level (trace, debug, info, warn, error)")
	fs.BoolVar(&g.json, "json", false, "machine-readable output: one JSON object per line")
}

// defaults fills in the defaults that depend on other flags, once fs is
// parsed: --no-logs-no-support is true with a --control-url (a self-hosted
// control server has no use for Tailscale's log servers) unless it was set.
func (g *globals) defaults(fs *flag.FlagSet) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "no-logs-no-support" })
	if !set && g.controlURL != "" {
		g.noLogsNoSupport = true
	}
}

func (g *globals) isGlobal(name string) bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	new(globals).register(fs)
	return fs.Lookup(name) != nil
}

func (g *globals) logger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "pantherctl", Level: hclog.LevelFromString(g.logLevel), Output: w})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// signer loads the operator's key.
func (c *CLI) signer() (client.Signer, error) {
	key, err := signing.ReadPrivateKey(c.g.key)
	if os.IsNotExist(unwrapAll(err)) {
		return client.Signer{}, exitf(ExitError, "no signing key at %s: run 'pantherctl keygen' (or pass --key)", c.g.key)
	}
	if err != nil {
		return client.Signer{}, exitf(ExitError, "%v", err)
	}
	return client.Signer{Key: key}, nil
}

func unwrapAll(err error) error {
	for err != nil {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
	return nil
}

// network is how pantherctl reaches agents.
type network struct {
	dialer tailnet.Dialer
	node   *tailnet.Node // nil with --via system
	close  func()
}

// connectTailnet brings up pantherctl's tailnet access.
func (c *CLI) connectTailnet(ctx context.Context) (*network, error) {
	if c.io.Dialer != nil {
		return &network{dialer: c.io.Dialer, close: func() {}}, nil
	}
	switch c.g.via {
	case "system":
		return &network{dialer: tailnet.NewSystemDialer(nil, c.log), close: func() {}}, nil
	case "tsnet":
	default:
		return nil, exitf(ExitUsage, "--via must be tsnet or system, not %q", c.g.via)
	}
	// One run at a time per node state: the second one says who has it.
	lock, err := lockStateDir(c.g.stateDir, c.cmdline, time.Now())
	if err != nil {
		return nil, err
	}
	node, err := tailnet.New(tailnet.Config{
		Hostname:        c.g.hostname,
		StateDir:        c.g.stateDir,
		ControlURL:      c.g.controlURL,
		AuthKeyFile:     c.g.authKeyFile,
		Tags:            splitList(c.g.tags),
		NoLogsNoSupport: c.g.noLogsNoSupport,
	}, c.log)
	if err != nil {
		lock.unlock()
		return nil, exitf(ExitError, "tailnet: %v", err)
	}
	if err := node.Up(ctx); err != nil {
		node.Close()
		lock.unlock()
		return nil, exitf(ExitError, "joining the tailnet: %v (check --control-url and --auth-key-file)", err)
	}
	return &network{dialer: node, node: node, close: func() { node.Close(); lock.unlock() }}, nil
}

func (c *CLI) printf(format string, args ...any) {
	if c.g.json {
		return
	}
	fmt.Fprintf(c.io.Stdout, format, args...)
}
