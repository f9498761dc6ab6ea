package config

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/sandbox"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// moduleUnit is the part of the module's systemd.services.panther-agent that
// becomes the unit file.
type moduleUnit struct {
	Description   string            `json:"description"`
	Environment   map[string]string `json:"environment"`
	ServiceConfig map[string]any    `json:"serviceConfig"`
	UnitConfig    map[string]any    `json:"unitConfig"`
}

// unitValue renders a NixOS unit setting the way NixOS does for scalars.
func unitValue(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "true"
		}
		return "false"
	case float64:
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// renderUnit writes the module's unit as a unit file whose ExecStart is
// execStart and whose PATH is what NixOS gives the module's service: the
// sandbox's model of it (sandbox.ServicePath, with the Debian packages of
// the module's path linked in by the Boot options), as the module's path
// entries are store paths of the real packages.
func renderUnit(u moduleUnit, execStart string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=%s\n", u.Description)
	for _, k := range sortedKeys(u.UnitConfig) {
		fmt.Fprintf(&b, "%s=%s\n", k, unitValue(u.UnitConfig[k]))
	}
	b.WriteString("\n[Service]\n")
	b.WriteString("Environment=PATH=" + sandbox.ServicePath + "\n")
	for _, k := range sortedKeys(u.Environment) {
		fmt.Fprintf(&b, "Environment=%s=%s\n", k, u.Environment[k])
	}
	for _, k := range sortedKeys(u.ServiceConfig) {
		if k == "ExecStart" {
			continue
		}
		v := unitValue(u.ServiceConfig[k])
		if k == "NotifyAccess" {
			// The stand-in is a shell script that notifies through
			// systemd-notify, a child process; the real agent notifies
			// from its main process.
			v = "all"
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	fmt.Fprintf(&b, "ExecStart=%s\n", execStart)
	return b.String()
}

// fakeSystemFlake builds a stand-in toplevel whose switch-to-configuration
// records its argument and whether it runs with no_new_privs.
func fakeSystemFlake(system string) string {
	return `{
  outputs = { self }: {
    nixosConfigurations.sandbox.config.system.build.toplevel = derivation {
      name = "nixos-system-sandbox";
      system = "` + system + `";
      builder = "/bin/sh";
      args = [ "-c" ''
        export PATH=/usr/bin:/bin
        mkdir -p $out/bin
        cat > $out/bin/switch-to-configuration <<'EOS'
        #!/bin/sh
        # Self-contained like the real one: a transient unit's PATH on
        # NixOS holds only systemd's tools.
        export PATH=/usr/bin:/bin
        { echo "action $1"; grep NoNewPrivs /proc/self/status; } > /var/lib/panther-agent/switched
        EOS
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  };
}
`
}

// agentStandIn does, inside the module's hardened unit, what the agent does
// with nix and systemd-run during a deployment, then stays up like the agent.
const agentStandIn = `#!/bin/sh
set -eu
state=/var/lib/panther-agent
exec > "$state/agent.log" 2>&1
set -x
test "$HOME" = "$state"
grep NoNewPrivs /proc/self/status
if touch /root/panther-probe; then echo "ProtectHome is not in effect"; exit 1; fi
echo private > /tmp/panther-private-tmp
out=$(nix build --json --no-link 'path:/srv/flake#nixosConfigurations.sandbox.config.system.build.toplevel' |
	sed -n 's/.*"out":"\([^"]*\)".*/\1/p')
test -n "$out"
nix-env -p /nix/var/nix/profiles/system --set "$out"
nix-env -p /nix/var/nix/profiles/system --list-generations
systemd-run --wait --collect --unit panther-switch-probe "$out/bin/switch-to-configuration" switch
echo ok > "$state/result"
systemd-notify --ready
exec sleep infinity
`

// TestModuleUnitHardeningKeepsAgentWorking boots a real systemd, installs the
// unit the NixOS module renders (with a stand-in for the agent) and checks
// that ProtectHome, PrivateTmp, NoNewPrivileges and NIX_REMOTE=daemon leave
// nix build, nix-env --set and a systemd-run switch working, and that the
// switch's transient unit does not inherit no_new_privs.
func TestModuleUnitHardeningKeepsAgentWorking(t *testing.T) {
	var unit moduleUnit
	if err := json.Unmarshal(nixEval(t, "unit"), &unit); err != nil {
		t.Fatal(err)
	}
	system := map[string]string{"amd64": "x86_64-linux", "arm64": "aarch64-linux"}[runtime.GOARCH]
	if system == "" {
		t.Skipf("no nix system name for GOARCH %s", runtime.GOARCH)
	}
	s := sandboxtest.Boot(t, sandboxtest.Options{
		Name: "panther-module",
		// The module's path: nix, systemd and git.
		ServicePackages: []string{"nix-bin", "git"},
		Units: map[string]string{
			"panther-agent.service": renderUnit(unit, "/srv/agent.sh"),
			"nix-daemon.service":    "[Service]\nExecStart=/usr/bin/nix-daemon\n",
		},
		Enable: []string{"nix-daemon.service"},
		Files: map[string]string{
			"/srv/agent.sh":        agentStandIn,
			"/srv/flake/flake.nix": fakeSystemFlake(system),
			// No build users: the sandbox is this machine's root, which
			// need not have the nixbld group NixOS has.
			"/etc/nix/nix.conf": "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =\n",
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := s.WaitUnit(ctx, "nix-daemon.service", "active"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	s.Run(t, "systemctl", "start", "panther-agent.service")
	for {
		if out, err := s.Exec(ctx, "cat", "/var/lib/panther-agent/result"); err == nil && strings.TrimSpace(string(out)) == "ok" {
			break
		}
		if state, _ := s.Exec(ctx, "systemctl", "show", "--property=ActiveState", "--value", "panther-agent.service"); strings.TrimSpace(string(state)) == "failed" || ctx.Err() != nil {
			log, _ := s.Exec(context.Background(), "cat", "/var/lib/panther-agent/agent.log")
			t.Fatalf("the stand-in agent did not finish (unit %s):\n%s\n%s", strings.TrimSpace(string(state)), log, s.Journal(context.Background(), "panther-agent.service"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("build, profile set and systemd-run switch under the module's hardening took %v", time.Since(begin).Round(time.Millisecond))

	log := s.Run(t, "cat", "/var/lib/panther-agent/agent.log")
	if !strings.Contains(log, "NoNewPrivs:\t1") {
		t.Errorf("the agent's unit does not run with no_new_privs; log:\n%s", log)
	}
	switched := s.Run(t, "cat", "/var/lib/panther-agent/switched")
	if !strings.Contains(switched, "action switch") || !strings.Contains(switched, "NoNewPrivs:\t0") {
		t.Errorf("the switch unit ran with %q, want action switch without no_new_privs", switched)
	}
	if out, err := s.Exec(ctx, "test", "-e", "/tmp/panther-private-tmp"); err == nil {
		t.Errorf("the agent's /tmp is shared with the host (PrivateTmp not in effect): %s", out)
	}
	if mode := s.Run(t, "stat", "-c", "%a", "/var/lib/panther-agent"); mode != "700" {
		t.Errorf("state dir mode %s, want 700", mode)
	}
	if _, err := s.Exec(ctx, "test", "-d", "/var/lib/panther-agent/cache/nix"); err != nil {
		t.Errorf("nix did not keep its cache under XDG_CACHE_HOME: %v", err)
	}
}
