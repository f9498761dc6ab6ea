package nix_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
)

func TestRealBuildAndEval(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, map[string]string{
		"alpha": nixtest.Good, "beta": nixtest.Warnings, "gamma": nixtest.BuildFail, "delta": nixtest.EvalError,
	})
	ref := nixtest.Ref(dir)
	ctx := t.Context()

	hosts, err := n.Hosts(ctx, ref)
	if err != nil || !slices.Equal(hosts, []string{"alpha", "beta", "delta", "gamma"}) {
		t.Fatalf("Hosts = %q, %v", hosts, err)
	}
	warnings, err := n.Warnings(ctx, ref, "beta")
	if err != nil || len(warnings) != 2 {
		t.Errorf("Warnings(beta) = %q, %v", warnings, err)
	}
	// HostInfo answers both in one evaluation.
	hosts, warnings, err = n.HostInfo(ctx, ref, "beta")
	if err != nil || !slices.Equal(hosts, []string{"alpha", "beta", "delta", "gamma"}) || len(warnings) != 2 {
		t.Errorf("HostInfo(beta) = %q, %q, %v", hosts, warnings, err)
	}
	hosts, warnings, err = n.HostInfo(ctx, ref, "omega")
	if err != nil || len(hosts) != 4 || warnings != nil {
		t.Errorf("HostInfo(omega) = %q, %q, %v; want the hosts and no warnings", hosts, warnings, err)
	}

	top := func(host string) string {
		i, err := nix.Toplevel(ref, host)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	start := time.Now()
	out, err := n.Build(ctx, top("alpha"), nil)
	if err != nil {
		t.Fatalf("Build(alpha): %v", err)
	}
	t.Logf("build of alpha took %v", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(out, "/nix/store/") {
		t.Errorf("out path %q", out)
	}
	if v, err := nix.NixOSVersion(out); err != nil || v != nixtest.Version(nixtest.Good) {
		t.Errorf("NixOSVersion = %q, %v", v, err)
	}

	sizes, err := n.ClosureSizes(ctx, out, "")
	if err != nil || sizes[out] <= 0 || len(sizes) != 1 {
		t.Errorf("ClosureSizes(%s) = %v, %v; want one positive size", out, sizes, err)
	}

	var lines []string
	_, err = n.Build(ctx, top("gamma"), func(l string) { lines = append(lines, l) })
	var ne *nix.Error
	if !errors.As(err, &ne) || ne.ExitCode != 1 {
		t.Fatalf("Build(gamma) = %v, want an *Error with exit code 1", err)
	}
	if !strings.Contains(ne.StderrTail, "lab-broken.c:3:1: error") || !strings.Contains(ne.Summary(), "builder for") {
		t.Errorf("StderrTail:\n%s\nSummary: %s", ne.StderrTail, ne.Summary())
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "compiling lab-broken") }) {
		t.Errorf("build log not streamed: %q", lines)
	}
	if ne.Argv[0] != "nix" || ne.Argv[1] != "build" {
		t.Errorf("Argv = %q", ne.Argv)
	}

	_, err = n.Build(ctx, top("delta"), nil)
	if !errors.As(err, &ne) || !strings.Contains(ne.Summary(), "fails on purpose") {
		t.Errorf("Build(delta) = %v", err)
	}
}

func TestRealProfile(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, map[string]string{"alpha": nixtest.Good})
	ctx := t.Context()
	build := func(variant string) string {
		t.Helper()
		nixtest.WriteHosts(t, dir, map[string]string{"alpha": variant})
		i, _ := nix.Toplevel(nixtest.Ref(dir), "alpha")
		out, err := n.Build(ctx, i, nil)
		if err != nil {
			t.Fatalf("build %s: %v", variant, err)
		}
		return out
	}
	good, v2 := build(nixtest.Good), build(nixtest.GoodV2)

	profile := filepath.Join(t.TempDir(), "system")
	if gens, err := n.Generations(ctx, profile); err != nil || len(gens) != 0 {
		t.Fatalf("Generations of a new profile = %+v, %v", gens, err)
	}
	if err := n.SetProfile(ctx, profile, good); err != nil {
		t.Fatalf("SetProfile: %v", err)
	}
	if err := n.SetProfile(ctx, profile, v2); err != nil {
		t.Fatalf("SetProfile: %v", err)
	}
	gens, err := n.Generations(ctx, profile)
	if err != nil {
		t.Fatalf("Generations: %v", err)
	}
	if cur, err := nix.CurrentGeneration(profile); err != nil || cur != 2 {
		t.Errorf("CurrentGeneration = %d, %v; want 2 (from the profile link)", cur, err)
	}
	type gen struct {
		Number  int
		Current bool
		Path    string
	}
	var got []gen
	for _, g := range gens {
		got = append(got, gen{g.Number, g.Current, g.Path})
		if time.Since(g.Created) > time.Hour || time.Since(g.Created) < -time.Minute {
			t.Errorf("generation %d created %v", g.Number, g.Created)
		}
	}
	want := []gen{{1, false, good}, {2, true, v2}}
	if !slices.Equal(got, want) {
		t.Errorf("generations %+v, want %+v", got, want)
	}

	if err := n.SwitchGeneration(ctx, profile, 1); err != nil {
		t.Fatalf("SwitchGeneration: %v", err)
	}
	if target, _ := filepath.EvalSymlinks(profile); target != good {
		t.Errorf("profile points at %s after switching back, want %s", target, good)
	}
	if err := n.SwitchGeneration(ctx, profile, 7); err == nil {
		t.Errorf("SwitchGeneration to a missing generation succeeded")
	}

	changes, err := n.DiffClosures(ctx, good, v2)
	if err != nil {
		t.Fatalf("DiffClosures: %v", err)
	}
	wantDiff := []nix.ClosureChange{{Name: "nixos-system-alpha", Old: []string{"26.05.lab_good"}, New: []string{"26.05.lab_good_v2"}}}
	if fmt.Sprintf("%#v", changes) != fmt.Sprintf("%#v", wantDiff) {
		t.Errorf("diff-closures of good and good-v2:\n%#v\nwant\n%#v", changes, wantDiff)
	}
	if changes, err := n.DiffClosures(ctx, "", v2); err != nil || changes != nil {
		t.Errorf("DiffClosures of a first deploy = %+v, %v", changes, err)
	}
}

// envRunner runs the real commands and keeps the environment of the last.
type envRunner struct {
	nix.ExecRunner
	mu  sync.Mutex
	env []string
}

func (r *envRunner) Run(ctx context.Context, c nix.Cmd) error {
	r.mu.Lock()
	r.env = c.Env
	r.mu.Unlock()
	return r.ExecRunner.Run(ctx, c)
}

// TestRealKeepsHostExperimentalFeatures: the host's own
// experimental-features (its nix.conf) stay enabled in every nix call;
// panther only adds nix-command and flakes.
func TestRealKeepsHostExperimentalFeatures(t *testing.T) {
	env := nixtest.Env(t)
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "nix.conf"), []byte("experimental-features = ca-derivations\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_CONFIG=") && !strings.HasPrefix(kv, "NIX_CONF_DIR=") {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, "NIX_CONF_DIR="+confDir)
	r := &envRunner{}
	n := nix.New(nix.Options{ExtraConfig: env.ExtraConfig, Environ: environ, Runner: r}, nil)
	dir := nixtest.Flake(t, map[string]string{"alpha": nixtest.Good})
	if _, err := n.Hosts(t.Context(), nixtest.Ref(dir)); err != nil {
		t.Fatalf("Hosts: %v (nix-command and flakes must be enabled)", err)
	}
	r.mu.Lock()
	callEnv := r.env
	r.mu.Unlock()
	// Not --json: nix 2.8 prints the features there as enum numbers.
	cmd := exec.CommandContext(t.Context(), "nix", "show-config")
	cmd.Env = callEnv
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix show-config: %v", err)
	}
	var got string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "experimental-features = "); ok {
			got = v
		}
	}
	for _, f := range []string{"ca-derivations", "flakes", "nix-command"} {
		if !strings.Contains(got, f) {
			t.Errorf("experimental-features in a nix call = %s, want %s among them", got, f)
		}
	}
}

// TestRealProfileWithoutDaemon: with ProfileStore "local", root sets and
// lists the profile when the environment asks for a nix-daemon that does
// not answer (as after a switch that broke it); without it, nix-env fails.
func TestRealProfileWithoutDaemon(t *testing.T) {
	env := nixtest.Env(t)
	dir := nixtest.Flake(t, map[string]string{"alpha": nixtest.Good})
	ctx := t.Context()
	i, _ := nix.Toplevel(nixtest.Ref(dir), "alpha")
	good, err := nixtest.Nix(t).Build(ctx, i, nil)
	if err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_REMOTE=") {
			environ = append(environ, kv)
		}
	}
	// A socket path nothing listens on, whatever this machine runs.
	environ = append(environ, "NIX_REMOTE=unix://"+filepath.Join(t.TempDir(), "no-daemon-socket"))
	profile := filepath.Join(t.TempDir(), "system")

	viaDaemon := nix.New(nix.Options{ExtraConfig: env.ExtraConfig, Environ: environ}, nil)
	if err := viaDaemon.SetProfile(ctx, profile, good); err == nil {
		t.Fatalf("SetProfile through a dead daemon succeeded: the test does not test anything")
	}
	local := nix.New(nix.Options{ExtraConfig: env.ExtraConfig, Environ: environ, ProfileStore: "local"}, nil)
	if err := local.SetSystemProfile(ctx, profile, good); err != nil {
		t.Fatalf("SetSystemProfile with the local store: %v", err)
	}
	gens, err := local.Generations(ctx, profile)
	if err != nil || len(gens) != 1 || gens[0].Path != good || !gens[0].Current {
		t.Errorf("Generations = %+v, %v", gens, err)
	}
	if err := local.SwitchGeneration(ctx, profile, 1); err != nil {
		t.Errorf("SwitchGeneration: %v", err)
	}
}

// TestRealSetSystemProfileRefusesNonSystem: a store path without
// nixos-version never reaches nix-env.
func TestRealSetSystemProfileRefusesNonSystem(t *testing.T) {
	n := nixtest.Nix(t)
	src := filepath.Join(t.TempDir(), "not-a-system")
	if err := os.WriteFile(src, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "nix-store", "--add", src).Output()
	if err != nil {
		t.Fatalf("nix-store --add: %v", err)
	}
	path := strings.TrimSpace(string(out))
	profile := filepath.Join(t.TempDir(), "system")
	err = n.SetSystemProfile(t.Context(), profile, path)
	if !errors.Is(err, nix.ErrNotNixOS) || !strings.Contains(err.Error(), "has no nixos-version") {
		t.Fatalf("SetSystemProfile of %s = %v, want ErrNotNixOS", path, err)
	}
	if _, err := os.Lstat(profile); !os.IsNotExist(err) {
		t.Errorf("the profile was created: %v", err)
	}
}
