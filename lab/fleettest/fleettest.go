// Package fleettest runs a fleet for integration tests: an in-process
// tailnet, hosts that are real systemd sandboxes (each in its own network
// namespace) running the real panther-agent as a unit with real nix, and the
// real pantherctl binary run as a separate process against them. The hosts
// behave like NixOS where the agent depends on it (see lab/sandbox and
// lab/nixtest): the agent unit is the NixOS module's (its PATH, never
// stopped or restarted by a switch), and with Options.InitialGeneration a
// host boots into a system of its own with the agent unit in it.
package fleettest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/lab/nixtest"
	"github.com/pantheros/panther/lab/sandbox"
	"github.com/pantheros/panther/lab/sandboxtest"
	"github.com/pantheros/panther/lab/tailnettest"
)

// Binaries are the built pantherctl and panther-agent.
type Binaries struct {
	Ctl, Agent string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// BuildTags are the Go build tags the binaries are built with, as shipped.
// ts_omit_peerapiserver drops tsnet's PeerAPI server, which otherwise
// listens on a kernel TCP socket on all of the host's interfaces: the agent
// must be reachable on the tailnet only.
const BuildTags = "ts_omit_peerapiserver"

// Build compiles pantherctl and panther-agent once per test process (into a
// directory removed at exit by the caller's TestMain, or left in the OS temp
// dir).
func Build(t testing.TB) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "panther-bin-")
		if err != nil {
			buildErr = err
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		built = Binaries{Ctl: filepath.Join(dir, "pantherctl"), Agent: filepath.Join(dir, "panther-agent")}
		for out, pkg := range map[string]string{built.Ctl: "./controller/cmd/pantherctl", built.Agent: "./agent/cmd/panther-agent"} {
			cmd := exec.Command("go", "build", "-tags", BuildTags, "-ldflags", "-X github.com/pantheros/panther/internal/version.Version=test", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("fleettest: %v", buildErr)
	}
	return built
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Options configure a fleet.
type Options struct {
	// Hosts maps host name to the nixtest variant its flake builds first.
	Hosts map[string]string
	// ConfirmTimeout is the agents' default confirmation window; default 60s.
	ConfirmTimeout time.Duration
	// HealthChecks are added to every agent's config (JSON objects).
	HealthChecks []map[string]any
	// NoSandboxNetNS keeps hosts in the test's network namespace.
	NoSandboxNetNS bool
	// AgentConfig holds extra agent.json keys (e.g. "maxUploadBytes") set
	// on every host after the fleet's own; default none.
	AgentConfig map[string]any
	// BootTimeout bounds each host's boot, and then its agent unit's start;
	// default 30s each. Large fleets on a loaded machine need more.
	BootTimeout time.Duration
	// InitialGeneration makes every host a NixOS host from the start, as a
	// real one always is: before the first boot the fleet builds the
	// host's variant and makes it the boot default, so the host boots into
	// it (/run/current-system and /run/booted-system) with it as
	// generation 1 of the system profile, and the agent unit (AgentUnit)
	// lives in the system, not in /etc (nixtest.SetAgentUnit), so the
	// variants no-agent and stops-agent mean something. Default false: the
	// hosts start with no system, no profile and the agent unit in /etc.
	InitialGeneration bool
	// Files are written into every host (path → content) before it boots,
	// e.g. a key file its AgentConfig names; default none.
	Files map[string]string
}

// Fleet is a running test fleet.
type Fleet struct {
	t       testing.TB
	Bin     Binaries
	Tailnet *tailnettest.Tailnet
	Dir     string // working dir of pantherctl (logs/ lands here)
	Flake   string // flake directory deployed from
	KeyPath string
	PubKey  string
	Hosts   map[string]*Host
	opts    Options
	nix     *nix.Nix // builds the initial systems (InitialGeneration)
}

// Host is one sandboxed host running panther-agent.
type Host struct {
	Name string
	SB   *sandboxtest.Sandbox
}

// New starts the tailnet and boots every host with its agent.
func New(t testing.TB, opts Options) *Fleet {
	t.Helper()
	sandboxtest.Require(t, !opts.NoSandboxNetNS)
	nixtest.Env(t)
	if opts.ConfirmTimeout == 0 {
		opts.ConfirmTimeout = 60 * time.Second
	}
	f := &Fleet{t: t, Bin: Build(t), Dir: t.TempDir(), Hosts: map[string]*Host{}, opts: opts}
	f.Tailnet = tailnettest.New(t, tailnettest.Options{BindAll: true})
	f.Flake = nixtest.Flake(t, opts.Hosts)
	if opts.InitialGeneration {
		nixtest.SetAgentUnit(t, f.Flake, f.AgentUnit())
		f.nix = nixtest.Nix(t)
	}
	f.KeyPath = filepath.Join(f.Dir, "operator.key")
	key, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.WritePrivateKey(f.KeyPath, key); err != nil {
		t.Fatal(err)
	}
	f.PubKey = signing.FormatPublicKey(signing.Public(key))

	var wg sync.WaitGroup
	var mu sync.Mutex
	for name := range opts.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := f.boot(name)
			mu.Lock()
			f.Hosts[name] = h
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return f
}

// AgentConfig is the agent.json a host gets.
func (f *Fleet) AgentConfig(name string) map[string]any {
	cfg := map[string]any{
		"hostName":        name,
		"stateDir":        "/var/lib/panther-agent",
		"controlUrl":      f.Tailnet.ControlURL,
		"trustedKeys":     []string{f.PubKey},
		"tags":            []string{"tag:panther-agent"},
		"allowedTags":     []string{"tag:panther-controller"},
		"noLogsNoSupport": true,
		"nixExtraConfig":  "sandbox = false\nsubstituters =\nbuild-users-group =",
		"healthSettle":    "0s",
		"confirmTimeout":  f.opts.ConfirmTimeout.String(),
		"logLevel":        "debug",
	}
	if len(f.opts.HealthChecks) > 0 {
		cfg["healthChecks"] = f.opts.HealthChecks
	}
	for k, v := range f.opts.AgentConfig {
		cfg[k] = v
	}
	return cfg
}

// AgentUnit is the text of panther-agent.service on the fleet's hosts, as
// nixos-module/default.nix makes it: the PATH of a NixOS service with the
// module's path (nix, systemd, git), and never stopped or restarted by a
// switch (X-StopOnRemoval=false, X-RestartIfChanged=false,
// X-StopIfChanged=false).
func (f *Fleet) AgentUnit() string {
	return fmt.Sprintf(`[Unit]
Description=panther agent
After=dbus.service
X-RestartIfChanged=false
X-StopIfChanged=false
X-StopOnRemoval=false

[Service]
Type=notify
NotifyAccess=main
ExecStart=%s run --config /etc/panther/agent.json
Restart=always
RestartSec=200ms
KillMode=process
Environment=TS_NO_LOGS_NO_SUPPORT=true
Environment=PATH=%s

[Install]
WantedBy=multi-user.target
`, f.Bin.Agent, sandbox.ServicePath)
}

// agentServicePackages stand for the module's `path` (see
// sandbox.Options.ServicePackages).
var agentServicePackages = []string{"nix-bin", "git"}

func (f *Fleet) boot(name string) *Host {
	t := f.t
	cfg, _ := json.MarshalIndent(f.AgentConfig(name), "", "  ")
	opts := sandboxtest.Options{
		Name:            name,
		NetNS:           !f.opts.NoSandboxNetNS,
		ServicePackages: agentServicePackages,
		Files:           map[string]string{"/etc/panther/agent.json": string(cfg)},
		BootTimeout:     f.opts.BootTimeout,
	}
	for p, c := range f.opts.Files {
		opts.Files[p] = c
	}
	var initial string
	if f.opts.InitialGeneration {
		// The boot loader entry of generation 1: stage 2 activates it at
		// the first boot, which installs and starts its agent unit.
		initial = f.buildInitial(name)
		opts.Files[nixtest.BootEntry] = fmt.Sprintf("title initial system of %s\noptions init=%s/init\ntoplevel %s\n", name, initial, initial)
	} else {
		opts.Units = map[string]string{nixtest.AgentUnit: f.AgentUnit()}
		opts.Enable = []string{nixtest.AgentUnit}
	}
	sb := sandboxtest.Boot(t, opts)
	h := &Host{Name: name, SB: sb}
	unitTimeout := 30 * time.Second
	if f.opts.BootTimeout > 0 {
		unitTimeout = f.opts.BootTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), unitTimeout)
	defer cancel()
	if initial != "" {
		cmd := sb.Command(ctx, "nix-env", "--profile", nixtest.Profile, "--set", initial)
		cmd.Env = append(cmd.Env, "NIX_CONFIG=build-users-group =")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("fleettest: %s: set the profile to the initial system: %v\n%s", name, err, out)
		}
	}
	if err := sb.WaitUnit(ctx, nixtest.AgentUnit, "active"); err != nil {
		t.Errorf("fleettest: %s: agent unit: %v\n%s", name, err, sb.Journal(context.Background(), nixtest.AgentUnit))
	}
	return h
}

// buildInitial builds host's system from the fleet's flake on the machine
// (the sandbox sees the machine's store through its lower layer).
func (f *Fleet) buildInitial(host string) string {
	t := f.t
	installable, err := nix.Toplevel(nixtest.Ref(f.Flake), host)
	if err != nil {
		t.Fatalf("fleettest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := f.nix.Build(ctx, installable, nil)
	if err != nil {
		t.Fatalf("fleettest: %s: build the initial system: %v", host, err)
	}
	return out
}

// Result is one pantherctl run.
type Result struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d after %v\n--- stdout\n%s--- stderr\n%s", r.Code, r.Elapsed, r.Stdout, r.Stderr)
}

// Env is the environment pantherctl runs with.
func (f *Fleet) Env() []string {
	return append(os.Environ(),
		"PANTHER_CONTROL_URL="+f.Tailnet.ControlURL,
		"PANTHER_STATE_DIR="+filepath.Join(f.Dir, "ctl-tsnet"),
		"PANTHER_KEY="+f.KeyPath,
		"PANTHER_HOSTNAME=ctl",
		"PANTHER_NO_LOGS_NO_SUPPORT=true",
		"TS_NO_LOGS_NO_SUPPORT=true",
	)
}

// Ctl runs pantherctl with args in the fleet's directory and returns what
// it did. It never fails the test by itself.
func (f *Fleet) Ctl(args ...string) Result {
	return f.CtlContext(context.Background(), args...)
}

// CtlContext is Ctl with a context (cancelling it kills pantherctl).
func (f *Fleet) CtlContext(ctx context.Context, args ...string) Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Bin.Ctl, args...)
	cmd.Dir = f.Dir
	cmd.Env = f.Env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
		r.Stderr += "\n" + err.Error()
	}
	f.t.Logf("pantherctl %s: exit %d in %v", strings.Join(args, " "), r.Code, r.Elapsed.Round(time.Millisecond))
	return r
}

// MustCtl runs pantherctl and fails the test unless it exits with want.
func (f *Fleet) MustCtl(want int, args ...string) Result {
	f.t.Helper()
	r := f.Ctl(args...)
	if r.Code != want {
		f.t.Fatalf("pantherctl %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// SetVariant changes what host's flake attribute builds.
func (f *Fleet) SetVariant(host, variant string) {
	f.t.Helper()
	f.opts.Hosts[host] = variant
	nixtest.WriteHosts(f.t, f.Flake, f.opts.Hosts)
}

// CurrentSystem is where host's /run/current-system points ("" if nowhere).
func (h *Host) CurrentSystem(t testing.TB) string {
	t.Helper()
	out, err := h.SB.Exec(context.Background(), "readlink", "-f", "/run/current-system")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// ReadFile reads a file inside the host.
func (h *Host) ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(h.SB.Path(path))
	if err != nil {
		return ""
	}
	return string(b)
}

// Record reads the agent's journal record of a deployment.
func (h *Host) Record(t testing.TB, id string) map[string]any {
	t.Helper()
	var rec map[string]any
	b := h.ReadFile(t, "/var/lib/panther-agent/deployments/"+id+"/record.json")
	if b == "" {
		t.Fatalf("%s: no journal record for %s", h.Name, id)
	}
	if err := json.Unmarshal([]byte(b), &rec); err != nil {
		t.Fatalf("%s: record %s: %v", h.Name, id, err)
	}
	return rec
}

// AgentJournal is the agent unit's journal, for failure messages.
func (h *Host) AgentJournal() string {
	return h.SB.Journal(context.Background(), "panther-agent.service")
}
