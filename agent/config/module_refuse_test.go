package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pantheros/panther/lab/nixtest"
)

// evalHost evaluates attr of the module's stub evaluation for a host whose
// services.panther-agent is a valid base plus override (Nix attribute set
// text), and returns nix-instantiate's output and error output.
func evalHost(t *testing.T, override, attr string, extraArgs ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := requireNix(t)
	host := `{ ... }: { networking.hostName = "web1"; services.panther-agent = { enable = true; trustedKeys = [ "` + testKey + `" ]; } // (` + override + `); }`
	args := append([]string{"--eval", "--strict", "--json", filepath.Join(repoRoot(t), "nixos-module", "stub", "eval.nix"),
		"-A", attr, "--arg", "host", host}, extraArgs...)
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// agentRefusal is how the agent itself reacts to a bad value: the config
// file keys (on top of a valid base) or the run flags it gets.
type agentRefusal struct {
	keys  map[string]any
	flags []string
}

// refused reports whether the agent refuses the value at start (Load's
// parse, defaults and validation, or its flag parsing).
func (a agentRefusal) refused(t *testing.T) bool {
	t.Helper()
	doc := map[string]any{"hostName": "web1", "trustedKeys": []string{testKey}}
	for k, v := range a.keys {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("panther-agent run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := RegisterFlags(fs)
	if err := fs.Parse(a.flags); err != nil {
		return true
	}
	_, err = flags.Load(writeConfig(t, string(b)))
	return err != nil
}

// TestModuleRefusesWhatTheAgentRefuses feeds every value the agent refuses
// at start (and the ones it would silently replace, or that would harm the
// host) through the NixOS module and wants an evaluation error naming the
// option and the bad item, as NixOS reports failed assertions or option
// types. Where the agent refuses the value too, it checks that as well, so
// the module's rules cannot drift stricter than the agent without notice.
func TestModuleRefusesWhatTheAgentRefuses(t *testing.T) {
	requireNix(t)
	for _, tc := range []struct {
		name     string
		override string
		want     []string
		// agent is the same value given to the agent; nil: the agent
		// accepts it (replaces it, or it harms only the host).
		agent *agentRefusal
	}{
		{"critical unit without type", `{ criticalUnits = [ "nginx.service" "nginx" ]; }`,
			[]string{"services.panther-agent.criticalUnits", `"nginx": not a systemd unit name`},
			&agentRefusal{keys: map[string]any{"criticalUnits": []string{"nginx"}}}},
		{"confirm timeout above max", `{ confirmTimeout = "20m"; }`,
			[]string{"services.panther-agent.confirmTimeout", `"20m" is longer than maxConfirmTimeout ("15m")`},
			&agentRefusal{keys: map[string]any{"confirmTimeout": "20m"}}},
		{"control URL without scheme", `{ controlUrl = "headscale.example.com"; }`,
			[]string{"services.panther-agent.controlUrl", `"headscale.example.com" is not an http(s) URL`},
			&agentRefusal{keys: map[string]any{"controlUrl": "headscale.example.com"}}},
		{"tcp check without port", `{ healthChecks = [ { name = "db"; type = "tcp"; address = "127.0.0.1"; } ]; }`,
			[]string{"services.panther-agent.healthChecks.0.address", `"127.0.0.1": not host:port`},
			&agentRefusal{keys: map[string]any{"healthChecks": []map[string]any{{"name": "db", "type": "tcp", "address": "127.0.0.1"}}}}},
		{"tcp check port out of range", `{ healthChecks = [ { name = "db"; type = "tcp"; address = "db:70000"; } ]; }`,
			[]string{"services.panther-agent.healthChecks.0.address", `"db:70000"`},
			&agentRefusal{keys: map[string]any{"healthChecks": []map[string]any{{"name": "db", "type": "tcp", "address": "db:70000"}}}}},
		{"http check URL without scheme", `{ healthChecks = [ { name = "web"; type = "http"; url = "localhost/healthz"; } ]; }`,
			[]string{"services.panther-agent.healthChecks.0.url", `"localhost/healthz": not an http(s) URL`},
			&agentRefusal{keys: map[string]any{"healthChecks": []map[string]any{{"name": "web", "type": "http", "url": "localhost/healthz"}}}}},
		{"health check zero timeout", `{ healthChecks = [ { name = "web"; type = "http"; url = "http://127.0.0.1/"; timeout = "0s"; } ]; }`,
			[]string{"services.panther-agent.healthChecks.0.timeout", `"0s" must be a positive duration`},
			&agentRefusal{keys: map[string]any{"healthChecks": []map[string]any{{"name": "web", "type": "http", "url": "http://127.0.0.1/", "timeout": "-1s"}}}}},
		{"duplicate health check names", `{ healthChecks = [ { name = "web"; type = "http"; url = "http://127.0.0.1/"; } { name = "web"; type = "tcp"; address = "127.0.0.1:80"; } ]; }`,
			[]string{"services.panther-agent.healthChecks", `"web": the name of more than one check`},
			&agentRefusal{keys: map[string]any{"healthChecks": []map[string]any{{"name": "web", "type": "http", "url": "http://127.0.0.1/"}, {"name": "web", "type": "tcp", "address": "127.0.0.1:80"}}}}},
		{"allowed tag without tag:", `{ allowedTags = [ "panther-controller" ]; }`,
			[]string{"services.panther-agent.allowedTags", `"panther-controller": not a tailnet tag`},
			&agentRefusal{keys: map[string]any{"allowedTags": []string{"panther-controller"}}}},
		{"tag starting with a digit", `{ tags = [ "tag:1agent" ]; }`,
			[]string{"services.panther-agent.tags", `"tag:1agent": not a tailnet tag`},
			&agentRefusal{keys: map[string]any{"tags": []string{"tag:1agent"}}}},
		{"allowed user with a space", `{ allowedUsers = [ "alice smith" ]; }`,
			[]string{"services.panther-agent.allowedUsers", `"alice smith": not a login name`},
			&agentRefusal{keys: map[string]any{"allowedUsers": []string{"alice smith"}}}},
		{"nobody allowed", `{ allowedTags = [ ]; allowedUsers = [ ]; }`,
			[]string{"services.panther-agent.allowedTags", "no caller could reach the agent"},
			&agentRefusal{keys: map[string]any{"allowedTags": []string{}, "allowedUsers": []string{}}}},
		{"relative state dir", `{ stateDir = "var/lib/panther-agent"; }`,
			[]string{"services.panther-agent.stateDir", `"var/lib/panther-agent": not a clean absolute path`},
			&agentRefusal{keys: map[string]any{"stateDir": "var/lib/panther-agent"}}},
		{"state dir with trailing slash", `{ stateDir = "/var/lib/panther-agent/"; }`,
			[]string{"services.panther-agent.stateDir", `"/var/lib/panther-agent/": not a clean absolute path`},
			&agentRefusal{keys: map[string]any{"stateDir": "/var/lib/panther-agent/"}}},
		{"state dir /var/lib", `{ stateDir = "/var/lib"; }`,
			[]string{"services.panther-agent.stateDir", `"/var/lib": a system directory`}, nil},
		{"profile not clean", `{ profile = "/nix/var/nix/profiles/../system"; }`,
			[]string{"services.panther-agent.profile", `"/nix/var/nix/profiles/../system": not a clean absolute path`},
			&agentRefusal{keys: map[string]any{"profile": "/nix/var/nix/profiles/../system"}}},
		{"relative auth key file", `{ authKeyFile = "secrets/authkey"; }`,
			[]string{"services.panther-agent.authKeyFile", `"secrets/authkey": not a clean absolute path`},
			&agentRefusal{keys: map[string]any{"authKeyFile": "secrets/authkey"}}},
		{"flake host starting with a dash", `{ flakeHost = "-web"; }`,
			[]string{"services.panther-agent.flakeHost", `"-web" is not a plain nixosConfigurations attribute name`},
			&agentRefusal{keys: map[string]any{"flakeHost": "-web"}}},
		{"host name with a space", `{ hostName = "web 1"; flakeHost = "web1"; }`,
			[]string{"services.panther-agent.hostName", `"web 1" is not a hostname`},
			&agentRefusal{keys: map[string]any{"hostName": "web 1", "flakeHost": "web1"}}},
		{"unknown extra flag", `{ extraArgs = [ "--log-level=debug" "--bogus" ]; }`,
			[]string{"services.panther-agent.extraArgs", `"--bogus" is not a flag of panther-agent run`},
			&agentRefusal{flags: []string{"--log-level=debug", "--bogus"}}},
		{"extra flag without its value", `{ extraArgs = [ "--log-level" ]; }`,
			[]string{"services.panther-agent.extraArgs", `"--log-level" needs a value`},
			&agentRefusal{flags: []string{"--log-level"}}},
		{"extra argument that is no flag", `{ extraArgs = [ "debug" ]; }`,
			[]string{"services.panther-agent.extraArgs", `"debug" is not a flag`}, nil},
		{"duration out of range", `{ maxConfirmTimeout = "3000000h"; }`,
			[]string{"services.panther-agent.maxConfirmTimeout", `"3000000h" is out of range`},
			&agentRefusal{keys: map[string]any{"maxConfirmTimeout": "3000000h"}}},
		{"seconds out of range", `{ healthSettle = 9999999999; }`,
			[]string{"services.panther-agent.healthSettle", `9999999999 is out of range`},
			&agentRefusal{keys: map[string]any{"healthSettle": 9999999999}}},
		{"zero confirm timeout", `{ confirmTimeout = "0s"; }`,
			[]string{"services.panther-agent.confirmTimeout", `"0s" must be a positive duration`}, nil},
		{"zero max confirm timeout", `{ maxConfirmTimeout = 0; }`,
			[]string{"services.panther-agent.maxConfirmTimeout", `0 must be a positive duration`}, nil},
		{"port 0", `{ port = 0; }`,
			[]string{"services.panther-agent.port", "0"}, nil},
		{"typed key in settings", `{ settings = { port = 8443; }; }`,
			[]string{"services.panther-agent.settings", `"port": has an option of its own`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := evalHost(t, tc.override, "checked")
			if err == nil {
				t.Fatalf("the module accepts %s; rendered %s", tc.override, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("evaluation error does not contain %q:\n%s", w, stderr)
				}
			}
			if tc.agent != nil && !tc.agent.refused(t) {
				t.Errorf("the agent accepts %+v, which the module refuses", *tc.agent)
			}
		})
	}
}

// TestModuleAcceptsWhatTheAgentAccepts evaluates values next to the refused
// ones that the agent takes, and loads what the module renders.
func TestModuleAcceptsWhatTheAgentAccepts(t *testing.T) {
	requireNix(t)
	for _, tc := range []struct {
		name, override string
		check          func(t *testing.T, c *Config)
	}{
		{"zero health settle", `{ healthSettle = 0; }`, func(t *testing.T, c *Config) {
			if c.HealthSettle.Duration != 0 {
				t.Errorf("healthSettle = %v, want 0", c.HealthSettle)
			}
		}},
		{"zero health settle string", `{ healthSettle = "0s"; }`, nil},
		{"largest durations", `{ confirmTimeout = "2562047h"; maxConfirmTimeout = "2562047h"; }`, nil},
		{"fractions and units", `{ confirmTimeout = "1.5m"; maxConfirmTimeout = "1h0m0.5s"; healthSettle = "250ms"; }`, nil},
		{"duplicate trusted key", `{ trustedKeys = [ "` + testKey + `" "` + otherKey + `" "` + testKey + `" ]; }`, func(t *testing.T, c *Config) {
			if !slices.Equal(c.TrustedKeys, []string{testKey, otherKey}) {
				t.Errorf("trustedKeys = %q, want each key once", c.TrustedKeys)
			}
		}},
		{"flags with values", `{ extraArgs = [ "--log-level" "debug" "--log-json" "-critical-unit=a.service" ]; }`, nil},
		{"settings for an untyped key", `{ settings = { runtimeDir = "/run/panther-agent-test"; }; }`, func(t *testing.T, c *Config) {
			if c.RuntimeDir != "/run/panther-agent-test" {
				t.Errorf("runtimeDir = %q, want the one from settings", c.RuntimeDir)
			}
		}},
		{"IPv6 tcp check", `{ healthChecks = [ { name = "db"; type = "tcp"; address = "[::1]:5432"; } ]; }`, nil},
		{"dotted host name", `{ hostName = "web1.example"; flakeHost = "web1"; }`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := evalHost(t, tc.override, "json")
			if err != nil {
				t.Fatalf("the module refuses %s: %v\n%s", tc.override, err, stderr)
			}
			if _, stderr, err := evalHost(t, tc.override, "checked"); err != nil {
				t.Fatalf("assertions refuse %s:\n%s", tc.override, stderr)
			}
			var rendered string
			if err := json.Unmarshal([]byte(out), &rendered); err != nil {
				t.Fatal(err)
			}
			c, err := Load(writeConfig(t, rendered))
			if err != nil {
				t.Fatalf("the agent refuses what the module renders for %s: %v", tc.override, err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// TestModuleKnowsAgentFlags keeps the module's list of panther-agent run's
// flags (for its extraArgs assertion) in step with RegisterFlags.
func TestModuleKnowsAgentFlags(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "nixos-module", "default.nix"))
	if err != nil {
		t.Fatal(err)
	}
	list := func(name string) []string {
		m := regexp.MustCompile(`(?s)\n\s*` + name + ` = \[(.*?)\];`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("default.nix has no %s list", name)
		}
		var out []string
		for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(m[1], -1) {
			out = append(out, string(q[1]))
		}
		slices.Sort(out)
		return out
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	RegisterFlags(fs)
	var names, bools []string
	fs.VisitAll(func(f *flag.Flag) {
		names = append(names, f.Name)
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			bools = append(bools, f.Name)
		}
	})
	slices.Sort(names)
	slices.Sort(bools)
	if got := list("agentFlags"); !slices.Equal(got, names) {
		t.Errorf("default.nix agentFlags = %q, RegisterFlags has %q", got, names)
	}
	if got := list("boolFlags"); !slices.Equal(got, bools) {
		t.Errorf("default.nix boolFlags = %q, RegisterFlags' boolean flags are %q", got, bools)
	}
}

// TestModuleChecksConfigInBuild builds the unit's config file with real nix
// (the stub's realBuild) and the real agent: with checkConfig, the agent's
// check-config reads the rendered file and extraArgs in the build, so a key
// the module cannot know is wrong fails the build with the agent's message.
func TestModuleChecksConfigInBuild(t *testing.T) {
	env := nixtest.Env(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-tags", "ts_omit_peerapiserver", "-o", filepath.Join(dir, "bin", "panther-agent"), "../cmd/panther-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build panther-agent: %v\n%s", err, out)
	}
	nixBuild := func(override string) (string, string, error) {
		host := `{ ... }: { networking.hostName = "web1"; services.panther-agent = { enable = true; trustedKeys = [ "` + testKey + `" ]; package = "` + dir + `"; } // (` + override + `); }`
		cmd := exec.Command("nix-build", "--no-out-link", filepath.Join(repoRoot(t), "nixos-module", "stub", "eval.nix"),
			"-A", "configFile", "--arg", "realBuild", "true", "--arg", "host", host)
		cmd.Env = env.Environ
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return strings.TrimSpace(out.String()), errb.String(), err
	}

	path, stderr, err := nixBuild(`{ extraArgs = [ "--log-level=debug" ]; settings.runtimeDir = "/run/panther-agent-test"; }`)
	if err != nil {
		t.Fatalf("a valid config does not build: %v\n%s", err, stderr)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the built config file does not load: %v", err)
	}
	if c.RuntimeDir != "/run/panther-agent-test" {
		t.Errorf("runtimeDir = %q, want settings' value", c.RuntimeDir)
	}

	for _, tc := range []struct{ name, override, want string }{
		{"unknown key in settings", `{ settings.bogusKey = 1; }`, "bogusKey"},
		{"relative path in settings", `{ settings.runtimeDir = "run/panther-agent"; }`, "runtimeDir"},
		{"bad flag value", `{ extraArgs = [ "--log-level=loud" ]; }`, "logLevel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := nixBuild(tc.override)
			if err == nil {
				t.Fatalf("the config file builds with %s", tc.override)
			}
			if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "panther-agent:") {
				t.Errorf("the build error does not carry the agent's message about %q:\n%s", tc.want, stderr)
			}
		})
	}
}

// TestModuleInstallsAgentAndKeepsItOnRemoval checks the module's other
// duties: the agent on PATH, X-StopOnRemoval=false on its unit (a switch to a
// configuration without the unit must not stop the agent running it), a
// checked config file, and a maintainer.
func TestModuleInstallsAgentAndKeepsItOnRemoval(t *testing.T) {
	var unit moduleUnit
	if err := json.Unmarshal(nixEval(t, "unit"), &unit); err != nil {
		t.Fatal(err)
	}
	if v, ok := unit.UnitConfig["X-StopOnRemoval"]; !ok || v != false {
		t.Errorf("unitConfig X-StopOnRemoval = %v, want false", v)
	}
	var pkgs []string
	if err := json.Unmarshal(nixEval(t, "systemPackages"), &pkgs); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(pkgs, func(p string) bool { return strings.HasSuffix(p, "-panther-agent") }) {
		t.Errorf("environment.systemPackages = %q, want the agent package", pkgs)
	}
	var name, script string
	if err := json.Unmarshal(nixEval(t, "configFile.name"), &name); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(nixEval(t, "configFile.script"), &script); err != nil {
		t.Fatal(err)
	}
	if name != "panther-agent.json" || !strings.Contains(script, "/bin/panther-agent check-config --config /nix/store/") {
		t.Errorf("the unit's config file is %q built by %q, want the rendered file checked by panther-agent check-config", name, script)
	}
	var meta struct {
		Maintainers []map[string]string `json:"maintainers"`
	}
	if err := json.Unmarshal(nixEval(t, "meta"), &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Maintainers) == 0 {
		t.Error("meta.maintainers is empty")
	}
}
