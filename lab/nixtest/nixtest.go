// Package nixtest provides the panther lab flake, a NixOS-shaped flake
// without nixpkgs or any input whose hosts build in ~0.1 s with real nix, and
// the helpers tests use to get a private copy of it and a nix environment.
//
// Each host deploys one variant (good, build-fail, web-ok, ...), read from
// hosts.json in the flake so a test changes what a host deploys by
// rewriting that file. Every toplevel is NixOS-shaped: nixos-version,
// init-interface-version, kernel, initrd, kernel-modules/, activate, init,
// configuration-name, switch-inhibitors, unit files under
// etc/systemd/system, specialisation/ and a bin/switch-to-configuration
// that keeps switch-to-configuration-ng's contract (root only, the lock and
// exit 11, exit 100 on a new init interface, exit 2 and 4, the boot
// default, check) while doing real systemd work inside a systemd sandbox
// (see lab/sandboxtest, whose stage 2 brings up the boot default on every
// boot). The flake's switch-to-configuration.sh, activate.sh and builder.sh
// document the details; examples/lab carries identical copies of those
// three files.
package nixtest

import (
	"cmp"
	"embed"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/sandbox"
)

// Variants of the lab flake.
const (
	Good           = "good"            // two units, lab-hello and lab-greeter
	GoodV2         = "good-v2"         // as good, lab-hello changed
	NoRestart      = "no-restart"      // as good, lab-hello changed with X-RestartIfChanged=false: a switch does not restart it
	BuildFail      = "build-fail"      // the builder prints lines, then exits 1
	EvalError      = "eval-error"      // the toplevel is a throw
	Warnings       = "warnings"        // builds; config.warnings has 2 entries
	DryFail        = "dry-fail"        // dry-activate exits 1
	UnitFail       = "unit-fail"       // adds lab-broken, which fails: switch exits 4
	ActivationFail = "activation-fail" // switch exits 2
	RebootRequired = "reboot-required" // new init-interface-version: switch sets the boot default and exits 100 without activating, dry-activate exits 100
	NewKernel      = "new-kernel"      // kernel, initrd and kernel-modules differ (KernelVersion vs NewKernelVersion); switch works
	Inhibited      = "inhibited"       // its switch inhibitors differ from every other variant's: check, switch and test refuse (exit 1) on a host running another variant
	Specialised    = "specialised"     // has specialisation/<SpecialisationName>, a full toplevel that adds ExtraUnit
	NoAgent        = "no-agent"        // with an agent unit in the flake (SetAgentUnit): a system without panther-agent.service
	StopsAgent     = "stops-agent"     // with an agent unit in the flake: panther-agent.service changed so that a switch stops it (dry-activate: "would stop")
	HangSwitch     = "hang-switch"     // switch starts HangUnit, a oneshot that never ends: switch blocks for ever holding SwitchLock
	RestartAgent   = "restart-agent"   // switch restarts panther-agent.service (no-block)
	CutNetwork     = "cut-network"     // switch takes every link but lo down
	CutControl     = "cut-control"     // switch cuts TCP to the agent's controlUrl (host:port) only: DERP and direct paths stay
	WebOK          = "web-ok"          // adds lab-web: HTTP 200 on WebAddr
	WebBroken      = "web-broken"      // lab-web answers 500 and stays active
)

// Slow variants: as good, with one step that takes seconds, so that a test
// can act (kill a process, cut the network) in the middle of that step,
// and reboot-switch. Variants does not list them.
const (
	SlowBuild  = "slow-build"  // the builder sleeps SlowBuildDelay (salt it: a built path is not built again)
	SlowDry    = "slow-dry"    // dry-activate sleeps SlowDryDelay
	SlowSwitch = "slow-switch" // switch pauses SlowSwitchDelay with the new units installed, before /run/current-system moves
	// RebootSwitch: switch activates (as good), then reboots the host
	// with `systemctl reboot` (no-block) and waits to be stopped by the
	// shutdown, like an activation that reboots.
	RebootSwitch = "reboot-switch"
)

// Traced is as good-v2, and every evaluation of its host prints
// TraceLine + the host name on nix's stderr (builtins.trace): a test counts
// the evaluations of a deploy in the agent's deployment log. Variants does
// not list it.
const (
	Traced    = "traced"
	TraceLine = "trace: panther-lab: evaluating "
)

// Agent variants: as good, with the agent unit of the flake (SetAgentUnit)
// run with arguments added to its ExecStart, so that a switch changes the
// agent's unit and the new agent runs another command line. Variants does
// not list them.
const (
	AgentChanged     = "agent-changed"     // --log-level info: the new agent starts and serves
	AgentRefused     = "agent-refused"     // --confirm-timeout 100h: the new agent's check-config refuses it (AgentRefusedMessage)
	AgentUnreachable = "agent-unreachable" // --control-url of a closed port: the new agent starts but never joins the tailnet
)

// AgentRefusedMessage is part of what the agent of AgentRefused says when it
// refuses its configuration.
const AgentRefusedMessage = "confirmTimeout: 100h0m0s is longer than maxConfirmTimeout"

// How long the slow variants' steps take (set in the flake's flake.nix).
const (
	SlowBuildDelay  = 8 * time.Second
	SlowDryDelay    = 8 * time.Second
	SlowSwitchDelay = 4 * time.Second
)

// Salted names variant with a salt for hosts.json: the same system, but a
// store path of its own that nix has not built yet (on the machine or in
// any sandbox), for a test that needs the build itself to run.
func Salted(variant, salt string) string { return variant + "+" + salt }

// Names the lab flake's systems use.
const (
	HelloUnit   = "lab-hello.service"
	GreeterUnit = "lab-greeter.service"
	BrokenUnit  = "lab-broken.service"
	WebUnit     = "lab-web.service"
	HangUnit    = "lab-hang.service"  // variant hang-switch; not wanted by multi-user.target
	ExtraUnit   = "lab-extra.service" // the specialisation of variant specialised
	// SpecialisationName is the specialisation of variant specialised.
	SpecialisationName = "lab-extra"
	// KernelVersion is the kernel of every variant but new-kernel's
	// NewKernelVersion (in kernel, initrd and kernel-modules/lib/modules).
	KernelVersion    = "6.6.0-lab"
	NewKernelVersion = "6.12.0-lab"
	// WebAddr is where lab-web listens (python3's http.server, from Debian's
	// python3 package at /usr/bin/python3).
	WebAddr = "127.0.0.1:8080"
	// FailActivationFile, when it exists on the host, makes switch and test
	// of every variant exit 2: a test makes a rollback fail with it.
	FailActivationFile = "/etc/panther-lab/fail-activation"
	// BootEntry is the boot default, written by switch and boot; it names
	// the toplevel (init=<toplevel>/init) that the next boot brings up
	// (sandbox.BootEntry).
	BootEntry = sandbox.BootEntry
	// CurrentSystem points at the active toplevel after switch and test,
	// and at the booted one after a boot.
	CurrentSystem = "/run/current-system"
	// BootedSystem points at the toplevel the host booted (the boot default
	// at boot time).
	BootedSystem = "/run/booted-system"
	// Profile is the system profile (nix-env generations).
	Profile = "/nix/var/nix/profiles/system"
	// SwitchLock is the lock every switch-to-configuration run takes (a
	// non-blocking flock: exit 11 when it is held).
	SwitchLock = "/run/nixos/switch-to-configuration.lock"
)

// Variants with a package in the closure (lab-tool): tool-v1 has
// lab-tool ToolV1 (16 KiB), tool-v2 lab-tool ToolV2 (48 KiB) and lab-hello
// changed, so a switch from one to the other shows a package version
// change with its size and a restart. Variants does not list them.
const (
	ToolV1Variant = "tool-v1"
	ToolV2Variant = "tool-v2"
	ToolPackage   = "lab-tool"
	ToolV1        = "1.0"
	ToolV2        = "1.1"
)

// Variants returns every variant name but the slow ones, sorted.
func Variants() []string {
	return []string{ActivationFail, BuildFail, CutControl, CutNetwork, DryFail, EvalError, Good, GoodV2, HangSwitch,
		Inhibited, NewKernel, NoAgent, NoRestart, RebootRequired, RestartAgent, Specialised, StopsAgent, UnitFail,
		Warnings, WebBroken, WebOK}
}

// Version returns the nixos-version text of a variant's toplevel.
func Version(variant string) string {
	return "26.05.lab-" + variant + " (Panther Lab)"
}

// Units returns the unit files a variant's toplevel installs, sorted.
func Units(variant string) []string {
	switch variant {
	case UnitFail:
		return []string{BrokenUnit, GreeterUnit, HelloUnit}
	case WebOK, WebBroken:
		return []string{GreeterUnit, HelloUnit, WebUnit}
	case HangSwitch:
		return []string{GreeterUnit, HangUnit, HelloUnit}
	}
	return []string{GreeterUnit, HelloUnit}
}

// Ref returns the flake reference of a flake directory: "path:<dir>", so nix
// reads the files as they are even inside a git checkout.
func Ref(dir string) string { return "path:" + dir }

//go:embed testdata/flake
var flakeFS embed.FS

// Flake copies the lab flake into a new t.TempDir() and returns its
// directory. hosts maps host name to variant and replaces the default
// hosts.json ({"alpha": "good", "beta": "web-ok"}) unless nil. It also
// records the test runner's network namespace, where switch never touches
// links.
func Flake(t testing.TB, hosts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	sub, err := fs.Sub(flakeFS, "testdata/flake")
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatalf("nixtest: copy flake: %v", err)
	}
	netns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("nixtest: read network namespace: %v", err)
	}
	writeJSON(t, filepath.Join(dir, "lab.json"), map[string]string{"system": nixSystem(), "runnerNetns": netns, "agentUnit": ""})
	if hosts != nil {
		WriteHosts(t, dir, hosts)
	}
	return dir
}

// AgentUnit is the unit name of the agent.
const AgentUnit = "panther-agent.service"

// SetAgentUnit makes every system of a flake made by Flake install unit as
// AgentUnit (wanted by multi-user.target), but NoAgent's, which has none,
// and StopsAgent's, which changes it and drops its X- lines
// (X-StopOnRemoval=false and the like) so that a switch stops it. Without
// it (the default) no system has an agent unit.
func SetAgentUnit(t testing.TB, dir, unit string) {
	t.Helper()
	path := filepath.Join(dir, "lab.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	var lab map[string]string
	if err := json.Unmarshal(b, &lab); err != nil {
		t.Fatalf("nixtest: %s: %v", path, err)
	}
	lab["agentUnit"] = unit
	writeJSON(t, path, lab)
}

// WriteHosts rewrites hosts.json of a flake made by Flake.
func WriteHosts(t testing.TB, dir string, hosts map[string]string) {
	t.Helper()
	writeJSON(t, filepath.Join(dir, "hosts.json"), hosts)
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("nixtest: %v", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatalf("nixtest: %v", err)
	}
}

func nixSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-linux"
}

// NixEnv is what a test needs to run the real nix.
type NixEnv struct {
	// ExtraConfig are the nix.conf lines tests add to
	// "extra-experimental-features = nix-command flakes": no build sandbox, no
	// substituters (no network), no build users (a machine without the
	// nixbld group builds as root).
	ExtraConfig []string
	// Environ is os.Environ() with NIX_CONFIG holding all those lines, for
	// tests that start nix themselves.
	Environ []string
}

// RequireEnv names the environment variable that turns a missing
// prerequisite from a skip into a failure; CI sets it to "1" (the same
// variable as lab/sandboxtest's).
const RequireEnv = "PANTHER_REQUIRE_INTEGRATION"

// Env returns the nix environment for tests, or skips the test with the
// reason when nix cannot run here (fails it instead when RequireEnv=1): nix
// missing (Debian package nix-bin), not root (without a daemon, nix writes
// /nix/store itself). Its NIX_CONFIG needs no nixbld group, so the tests
// build on a machine that `make setup` has not configured yet.
func Env(t testing.TB) NixEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: nix without a daemon writes /nix/store itself")
	}
	for _, bin := range []string{"nix", "nix-env"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, bin+" is not installed (Debian package nix-bin)")
		}
	}
	// build-users-group = : a machine without the nixbld group (Debian's
	// nix-bin without nix-setup-systemd) builds as root.
	extra := []string{"sandbox = false", "substituters =", "build-users-group ="}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_CONFIG=") {
			env = append(env, kv)
		}
	}
	cfg := append([]string{"extra-experimental-features = nix-command flakes"}, extra...)
	env = append(env, "NIX_CONFIG="+strings.Join(cfg, "\n"))
	return NixEnv{ExtraConfig: extra, Environ: env}
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("nixtest: %s (%s=1 forbids skipping)", reason, RequireEnv)
	}
	t.Skipf("nixtest: %s", reason)
}

// Nix returns a internal/nix runner of the real binaries with the test settings
// (see Env, which it skips through); PANTHER_TEST_LOG_LEVEL raises its log
// level from warn.
func Nix(t testing.TB) *nix.Nix {
	t.Helper()
	env := Env(t)
	log := hclog.New(&hclog.LoggerOptions{
		Name:  t.Name(),
		Level: hclog.LevelFromString(cmp.Or(os.Getenv("PANTHER_TEST_LOG_LEVEL"), "warn")),
	})
	return nix.New(nix.Options{ExtraConfig: env.ExtraConfig}, log)
}
