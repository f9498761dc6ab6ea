// Package lab runs panther's whole flow on one machine: an in-process
// tailnet (lab/labnet), hosts that are real systemd sandboxes in their own
// network namespaces (lab/sandbox) running the real panther-agent with real
// nix, and the example flake of examples/lab. Demo walks through every
// pantherctl command against it; Up/Down keep it running in the background
// for trying commands by hand. It is the logic of the panther-lab binary,
// which `pantherctl lab` runs; production pantherctl never links it.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	labflake "github.com/pantheros/panther/examples/lab"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/lab/labnet"
	"github.com/pantheros/panther/lab/sandbox"
)

// Owner names the lab's sandboxes (their cgroups start with it).
const Owner = "panther-lab"

// markerFile marks a directory as a lab directory: only such a directory is
// ever emptied or removed.
const markerFile = ".panther-lab"

// NixConfig is the nix.conf the lab's nix calls read (through
// NIX_USER_CONF_FILES, so the export line stays one line): flakes, no build
// sandbox (the builders are /bin/sh) and no substituters (no network).
const NixConfig = "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =\n"

// Variants of the example flake (examples/lab/flake.nix).
const (
	VariantGood       = "good"        // lab-hello and lab-greeter
	VariantV2         = "v2"          // lab-hello changed
	VariantBroken     = "broken"      // adds a unit that fails to start
	VariantCutNetwork = "cut-network" // activation takes every link but lo down
)

// AgentServicePackages are the Debian packages standing for the `path` the
// NixOS module gives the agent's unit (nix, systemd, git; systemd's tools
// are on every service's PATH already).
var AgentServicePackages = []string{"nix-bin", "git"}

// DefaultHosts returns the names of the lab's hosts: alpha, beta, gamma.
func DefaultHosts() []string { return []string{"alpha", "beta", "gamma"} }

// Options configure a lab.
type Options struct {
	// Dir holds everything the lab creates: the hosts' disks, the flake
	// copy, the operator key, pantherctl's tailnet state and logs. It must
	// be empty, missing, or a lab directory from before. Required.
	Dir string
	// Hosts are the host names. Default DefaultHosts().
	Hosts []string
	// Agent is the panther-agent binary the hosts run. Default: next to the
	// running executable, else on PATH (see Binaries).
	Agent string
	// Ctl is the pantherctl binary. Default: as Agent.
	Ctl string
	// FlakeSource is a flake directory copied instead of the embedded
	// examples/lab. Default: the embedded one.
	FlakeSource string
	// ConfirmTimeout is the agents' default confirmation window. Default 60s.
	ConfirmTimeout time.Duration
	// HealthSettle is the agents' pause after a switch before judging
	// health. Default 1s.
	HealthSettle time.Duration
	// Logger receives the lab's own logs. Default: none.
	Logger hclog.Logger
}

// Lab is a running lab. Close stops it.
type Lab struct {
	// Dir is the lab directory.
	Dir string
	// Flake is the lab's copy of the flake the hosts deploy.
	Flake string
	// KeyPath is the operator's private key the agents trust.
	KeyPath string
	// Ctl and Agent are the binaries in use.
	Ctl, Agent string
	// Net is the in-process tailnet.
	Net *labnet.Net
	// Hosts are the sandboxed hosts, in the order of Options.Hosts.
	Hosts []*Host

	opts     Options
	log      hclog.Logger
	variants map[string]string
	mu       sync.Mutex // variants, hosts.json
}

// Host is one sandboxed host running panther-agent.
type Host struct {
	Name string
	SB   *sandbox.Sandbox
}

// Start boots the tailnet and every host, and returns once each agent has
// joined the tailnet. On error everything started is stopped again (the
// directory stays for inspection).
func Start(ctx context.Context, opts Options) (_ *Lab, err error) {
	if opts.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if len(opts.Hosts) == 0 {
		opts.Hosts = DefaultHosts()
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = 60 * time.Second
	}
	if opts.HealthSettle <= 0 {
		opts.HealthSettle = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Agent == "" || opts.Ctl == "" {
		bins, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		if opts.Agent == "" {
			opts.Agent = bins.Agent
		}
		if opts.Ctl == "" {
			opts.Ctl = bins.Ctl
		}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := claimDir(dir); err != nil {
		return nil, err
	}
	l := &Lab{
		Dir:      dir,
		Flake:    filepath.Join(dir, "flake"),
		KeyPath:  filepath.Join(dir, "operator.key"),
		Ctl:      opts.Ctl,
		Agent:    opts.Agent,
		opts:     opts,
		log:      opts.Logger.Named("lab"),
		variants: map[string]string{},
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()

	addr, err := labnet.HostAddr()
	if err != nil {
		return nil, fmt.Errorf("lab: the hosts reach the tailnet on an address of this machine: %w", err)
	}
	l.Net, err = labnet.Start(ctx, labnet.Options{Addr: addr.String(), Logf: hclogf(l.log.Named("tailnet"), hclog.Trace)})
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.log.Info("tailnet up", "control", l.Net.ControlURL)

	key, err := signing.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := signing.WritePrivateKey(l.KeyPath, key); err != nil {
		return nil, fmt.Errorf("lab: operator key: %w", err)
	}
	pub := signing.FormatPublicKey(signing.Public(key))

	for _, h := range opts.Hosts {
		l.variants[h] = VariantGood
	}
	if err := l.writeFlake(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nix.conf"), []byte(NixConfig), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}

	// Boot the hosts in parallel; each is ready when its agent unit is.
	hosts := make([]*Host, len(opts.Hosts))
	errs := make([]error, len(opts.Hosts))
	var wg sync.WaitGroup
	for i, name := range opts.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = l.bootHost(ctx, name, pub)
		}()
	}
	wg.Wait()
	for _, h := range hosts {
		if h != nil {
			l.Hosts = append(l.Hosts, h)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := l.waitJoined(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	return l, nil
}

// claimDir creates dir or checks that it is empty or a lab directory, and
// marks it as one.
func claimDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	case err != nil:
		return fmt.Errorf("lab: %w", err)
	case len(entries) > 0 && !isLabDir(dir):
		return fmt.Errorf("lab: %s is not empty and not a lab directory (no %s): choose another --dir", dir, markerFile)
	}
	return os.WriteFile(filepath.Join(dir, markerFile), []byte("created by panther-lab; 'pantherctl lab down' removes this directory\n"), 0o644)
}

func isLabDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, markerFile))
	return err == nil
}

// writeFlake copies the flake into the lab and writes lab.json and
// hosts.json.
func (l *Lab) writeFlake() error {
	if err := os.RemoveAll(l.Flake); err != nil {
		return err
	}
	var src fs.FS = labflake.Flake
	if l.opts.FlakeSource != "" {
		src = os.DirFS(l.opts.FlakeSource)
	}
	if err := os.CopyFS(l.Flake, src); err != nil {
		return fmt.Errorf("lab: copy the flake: %w", err)
	}
	netns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("lab: read network namespace: %w", err)
	}
	if err := writeJSON(filepath.Join(l.Flake, "lab.json"), map[string]string{"system": nixSystem(), "labNetns": netns}); err != nil {
		return err
	}
	return l.writeHosts()
}

func (l *Lab) writeHosts() error {
	return writeJSON(filepath.Join(l.Flake, "hosts.json"), l.variants)
}

// SetVariant changes what host's configuration in the lab flake builds, as
// an operator editing the flake would.
func (l *Lab) SetVariant(host, variant string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.variants[host]; !ok {
		return fmt.Errorf("lab: no host %q", host)
	}
	l.variants[host] = variant
	return l.writeHosts()
}

// bootHost boots one host with panther-agent enabled and waits for the
// agent's unit.
func (l *Lab) bootHost(ctx context.Context, name, pub string) (*Host, error) {
	cfg := map[string]any{
		"hostName":        name,
		"stateDir":        "/var/lib/panther-agent",
		"controlUrl":      l.Net.ControlURL,
		"trustedKeys":     []string{pub},
		"tags":            []string{"tag:panther-agent"},
		"allowedTags":     []string{"tag:panther-controller"},
		"noLogsNoSupport": true,
		"nixExtraConfig":  "sandbox = false\nsubstituters =\nbuild-users-group =",
		"healthSettle":    l.opts.HealthSettle.String(),
		"confirmTimeout":  l.opts.ConfirmTimeout.String(),
		"logLevel":        "debug",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	// The unit as nixos-module/default.nix makes it: the PATH of a NixOS
	// service with the module's path (nix, systemd, git), and never stopped
	// or restarted by a switch.
	unit := fmt.Sprintf(`[Unit]
Description=panther agent (lab)
After=dbus.service
X-RestartIfChanged=false
X-StopIfChanged=false
X-StopOnRemoval=false

[Service]
ExecStart=%s run --config /etc/panther/agent.json
Restart=always
RestartSec=200ms
KillMode=process
Environment=TS_NO_LOGS_NO_SUPPORT=true
Environment=PATH=%s

[Install]
WantedBy=multi-user.target
`, l.Agent, sandbox.ServicePath)
	sb, err := sandbox.Boot(ctx, sandbox.Options{
		Name:            name,
		StateDir:        filepath.Join(l.Dir, "hosts", name),
		NetNS:           true,
		Units:           map[string]string{"panther-agent.service": unit},
		ServicePackages: AgentServicePackages,
		Enable:          []string{"panther-agent.service"},
		Files:           map[string]string{"/etc/panther/agent.json": string(b)},
		Owner:           Owner,
		Logger:          l.log,
	})
	if err != nil {
		return nil, fmt.Errorf("lab: host %s: %w", name, err)
	}
	h := &Host{Name: name, SB: sb}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sb.WaitUnit(wctx, "panther-agent.service", "active"); err != nil {
		return h, fmt.Errorf("lab: host %s: %w\n%s", name, err, tailLines(sb.Journal(context.Background(), "panther-agent.service"), 30))
	}
	l.log.Info("host up", "host", name, "ip", sb.IP())
	return h, nil
}

// waitJoined waits until every host's agent is a node of the tailnet.
func (l *Lab) waitJoined(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		joined := map[string]bool{}
		for _, n := range l.Net.Control.AllNodes() {
			if n.Hostinfo.Valid() {
				joined[n.Hostinfo.Hostname()] = true
			}
		}
		var missing []string
		for _, h := range l.Hosts {
			if !joined[h.Name] {
				missing = append(missing, h.Name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var logs []string
			for _, h := range l.Hosts {
				if slices.Contains(missing, h.Name) {
					logs = append(logs, h.Name+":\n"+tailLines(h.SB.Journal(context.Background(), "panther-agent.service"), 20))
				}
			}
			return fmt.Errorf("lab: agents of %s did not join the tailnet: %w\n%s", strings.Join(missing, ", "), ctx.Err(), strings.Join(logs, "\n"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Host returns the host called name, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Env returns the variables that point pantherctl at the lab, as NAME=value.
func (l *Lab) Env() []string {
	return []string{
		"PANTHER_CONTROL_URL=" + l.Net.ControlURL,
		"PANTHER_STATE_DIR=" + filepath.Join(l.Dir, "pantherctl"),
		"PANTHER_KEY=" + l.KeyPath,
		"PANTHER_NO_LOGS_NO_SUPPORT=true",
		"PANTHER_FLAKE=" + l.Flake,
		"NIX_USER_CONF_FILES=" + filepath.Join(l.Dir, "nix.conf"),
	}
}

// ExportLine returns a shell line that exports Env, for sh and bash.
func (l *Lab) ExportLine() string {
	return ExportLine(l.Env())
}

// ExportLine formats NAME=value pairs as one `export` line, quoting values
// for sh.
func ExportLine(env []string) string {
	parts := []string{"export"}
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		parts = append(parts, name+"="+shellQuote(val))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Close stops every host and the tailnet. The directory stays; Remove
// deletes it. Close is safe to call more than once.
func (l *Lab) Close() error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range l.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.SB.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if l.Net != nil {
		if err := l.Net.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remove deletes a lab directory and sweeps what stopped or killed lab
// sandboxes left behind. It refuses a directory without the lab's marker.
// A missing directory is not an error.
func Remove(dir string) error {
	var errs []error
	if err := sandbox.RemoveStale(Owner); err != nil {
		errs = append(errs, err)
	}
	if err := removeDir(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeDir deletes dir if it is a lab directory.
func removeDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if !isLabDir(dir) {
		return fmt.Errorf("lab: %s is not a lab directory (no %s); not removing it", dir, markerFile)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("lab: remove %s: %w", dir, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// nixSystem is the nix system name of this machine, e.g. x86_64-linux.
func nixSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-linux"
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hclogf adapts an hclog logger to tailscale's printf-style loggers.
func hclogf(l hclog.Logger, level hclog.Level) func(string, ...any) {
	return func(format string, args ...any) {
		l.Log(level, fmt.Sprintf(format, args...))
	}
}
