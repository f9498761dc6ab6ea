package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/nixcache"
	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// The fleet cache tests (issue 12 item 4): hosts of one rollout with the
// same system build it once; the others substitute it over the tailnet
// from the builder's binary cache, signed with the fleet key. Builds are
// counted from the agents' own deployment logs: the shared system's builder
// prints cacheBuildMarker, so a host whose log has that line ran the build.

const cacheBuildMarker = "panther-cache-test: building the shared system"

// cacheFlake writes a flake whose hosts share systems: systems maps host to
// the name of its system; hosts with the same name get the same store path.
// Each system is NixOS-shaped enough for --build-only (nixos-version) and
// its build burns CPU: loops iterations of a shell loop (1M ≈ 1 s of CPU
// on the lab machine).
func cacheFlake(t testing.TB, salt string, loops int, systems map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var attrs strings.Builder
	for host, sys := range systems {
		fmt.Fprintf(&attrs, "      %s = { config.system.build.toplevel = mk %q; config.warnings = [ ]; };\n", host, sys)
	}
	flake := fmt.Sprintf(`{
  outputs = { self }: let
    mk = name: derivation {
      name = "nixos-system-${name}-26.05.cache";
      system = %q;
      builder = "/bin/sh";
      args = [ "-c" ''
        echo "%s ${name}" >&2
        i=0
        while [ $i -lt %d ]; do i=$((i+1)); done
        mkdir -p $out
        echo 26.05.cache > $out/nixos-version
        echo %s > $out/salt
      '' ];
      PATH = "/usr/bin:/bin";
    };
  in {
    nixosConfigurations = {
%s    };
  };
}
`, cacheSystem(), cacheBuildMarker, loops, salt, attrs.String())
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cacheSystem() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64-linux"
	}
	return "x86_64-linux"
}

// cacheFleet boots hosts whose agents share a fleet cache key.
func cacheFleet(t testing.TB, hosts []string) (*fleettest.Fleet, nixcache.SecretKey) {
	t.Helper()
	return cacheFleetWith(t, hosts, 0)
}

// cacheFleetWith is cacheFleet with a boot timeout (0: fleettest's).
func cacheFleetWith(t testing.TB, hosts []string, boot time.Duration) (*fleettest.Fleet, nixcache.SecretKey) {
	t.Helper()
	env := nixtest.Env(t)
	cmd := exec.Command("nix", "key", "generate-secret", "--key-name", "panther-fleet-test-1")
	cmd.Env = env.Environ
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix key generate-secret: %v", err)
	}
	key, err := nixcache.ParseSecretKey(string(out))
	if err != nil {
		t.Fatal(err)
	}
	vs := map[string]string{}
	for _, h := range hosts {
		vs[h] = nixtest.Good
	}
	f := fleettest.New(t, fleettest.Options{
		Hosts:       vs,
		BootTimeout: boot,
		Files:       map[string]string{"/etc/panther/fleet-cache.key": string(out)},
		AgentConfig: map[string]any{"fleetCache": map[string]any{
			"secretKeyFile": "/etc/panther/fleet-cache.key",
			"trustedKeys":   []string{key.Public().String()},
			"startWait":     "60s",
		}},
	})
	return f, key
}

// buildLogs runs a --build-only deploy of hosts and returns each host's
// deployment log.
func cacheDeploy(t testing.TB, f *fleettest.Fleet, flake string, hosts []string, extra ...string) map[string]string {
	t.Helper()
	known := map[string][]string{}
	for _, h := range hosts {
		known[h] = f.Hosts[h].Deployments(t)
	}
	args := append([]string{"deploy", "--flake", flake, "--build-only", "--jobs", fmt.Sprint(len(hosts))}, extra...)
	args = append(args, hosts...)
	r := f.MustCtl(0, args...)
	t.Logf("pantherctl: %v", r.Elapsed)
	logs := map[string]string{}
	for _, h := range hosts {
		rec := f.Hosts[h].WaitDeployment(t, known[h], time.Minute, journal.StateBuilt, journal.StateFailed)
		logs[h] = f.Hosts[h].DeploymentLog(t, rec.ID)
	}
	return logs
}

func built(log string) bool { return strings.Contains(log, cacheBuildMarker) }

func TestFleetCache(t *testing.T) {
	hosts := []string{"alpha", "beta", "gamma"}
	f, key := cacheFleet(t, hosts)

	t.Run("SameSystemBuildsOnce", func(t *testing.T) {
		salt := fmt.Sprintf("once-%d", time.Now().UnixNano())
		flake := cacheFlake(t, salt, 500000, map[string]string{"alpha": "shared", "beta": "shared", "gamma": "shared"})
		logs := cacheDeploy(t, f, flake, hosts)
		builds := 0
		for _, h := range hosts {
			if built(logs[h]) {
				builds++
			} else if !strings.Contains(logs[h], "fleet cache: substituted") {
				t.Errorf("%s neither built nor substituted:\n%s", h, logs[h])
			}
		}
		if builds != 1 {
			for h, l := range logs {
				t.Logf("--- %s\n%s", h, l)
			}
			t.Fatalf("%d builds, want 1", builds)
		}
		if !built(logs["alpha"]) {
			t.Errorf("alpha, the first build peer, did not build")
		}
	})

	t.Run("PeerWithAnotherSystemIsSkipped", func(t *testing.T) {
		// alpha builds a system of its own: beta asks it, hears "other",
		// and builds; gamma substitutes from beta.
		salt := fmt.Sprintf("other-%d", time.Now().UnixNano())
		flake := cacheFlake(t, salt, 200000, map[string]string{"alpha": "own", "beta": "shared", "gamma": "shared"})
		logs := cacheDeploy(t, f, flake, hosts)
		if !built(logs["alpha"]) || !built(logs["beta"]) || built(logs["gamma"]) {
			for h, l := range logs {
				t.Logf("--- %s\n%s", h, l)
			}
			t.Fatalf("built: alpha %v beta %v gamma %v; want alpha and beta only", built(logs["alpha"]), built(logs["beta"]), built(logs["gamma"]))
		}
		if !strings.Contains(logs["gamma"], "substituted") || !strings.Contains(logs["gamma"], "from beta") {
			t.Errorf("gamma did not substitute from beta:\n%s", logs["gamma"])
		}
	})

	t.Run("BuildOnNamesTheBuilder", func(t *testing.T) {
		salt := fmt.Sprintf("on-%d", time.Now().UnixNano())
		flake := cacheFlake(t, salt, 200000, map[string]string{"alpha": "shared", "beta": "shared", "gamma": "shared"})
		logs := cacheDeploy(t, f, flake, hosts, "--build-on", "gamma")
		if built(logs["alpha"]) || built(logs["beta"]) || !built(logs["gamma"]) {
			t.Fatalf("built: alpha %v beta %v gamma %v; want gamma only", built(logs["alpha"]), built(logs["beta"]), built(logs["gamma"]))
		}
	})

	t.Run("PushToFromTheBuilderOnly", func(t *testing.T) {
		// file:// stands for the user's own cache (S3, Attic, ...): nix
		// copy --to writes a binary cache there, inside the host.
		const dir = "/var/lib/panther-push-test"
		salt := fmt.Sprintf("push-%d", time.Now().UnixNano())
		flake := cacheFlake(t, salt, 200000, map[string]string{"alpha": "shared", "beta": "shared", "gamma": "shared"})
		logs := cacheDeploy(t, f, flake, hosts, "--push-to", "file://"+dir)
		for _, h := range hosts {
			entries, _ := os.ReadDir(f.Hosts[h].SB.Path(dir))
			narinfos := 0
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".narinfo") {
					narinfos++
				}
			}
			if built(logs[h]) != (narinfos > 0) {
				t.Errorf("%s: built %v, %d narinfo files in its push target; want the builder alone to push\n%s", h, built(logs[h]), narinfos, logs[h])
			}
			if built(logs[h]) && !strings.Contains(logs[h], "pushed ") {
				t.Errorf("%s: no push line:\n%s", h, logs[h])
			}
		}
	})

	t.Run("BuildOnLocal", func(t *testing.T) {
		// pantherctl builds with its own nix (the test's settings) and
		// serves the system from its tailnet node: no host builds.
		t.Setenv("NIX_CONFIG", "extra-experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nbuild-users-group =")
		keyFile := filepath.Join(t.TempDir(), "fleet.key")
		if err := os.WriteFile(keyFile, []byte(key.Name+":"+base64.StdEncoding.EncodeToString(key.Key)), 0o600); err != nil {
			t.Fatal(err)
		}
		salt := fmt.Sprintf("local-%d", time.Now().UnixNano())
		flake := cacheFlake(t, salt, 200000, map[string]string{"alpha": "shared", "beta": "shared", "gamma": "shared"})
		logs := cacheDeploy(t, f, flake, hosts, "--build-on", "local", "--cache-key", keyFile)
		for _, h := range hosts {
			if built(logs[h]) || !strings.Contains(logs[h], "from ctl") {
				t.Errorf("%s built %v; want it substituted from ctl:\n%s", h, built(logs[h]), logs[h])
			}
		}
	})

	t.Run("CacheServesTaggedPeersOnly", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		get := func(node *tailnet.Node, path string) (int, string) {
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return node.Dial(ctx, network, addr)
			}}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://alpha:7444"+path, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		absent := "/" + strings.Repeat("0", 32) + ".narinfo"
		peer := f.Tailnet.Node(t, "cache-peer", "tag:panther-agent")
		if code, body := get(peer, "/nix-cache-info"); code != 200 || !strings.Contains(body, "StoreDir: /nix/store") {
			t.Errorf("tagged peer: nix-cache-info: %d %q", code, body)
		}
		if code, body := get(peer, absent); code != 404 || !strings.Contains(body, "not found") {
			t.Errorf("tagged peer, absent path: %d %q, want 404 not found", code, body)
		}
		stranger := f.Tailnet.Node(t, "cache-stranger")
		if code, body := get(stranger, "/nix-cache-info"); code != 403 {
			t.Errorf("untagged node: %d %q, want 403", code, body)
		}
		ctl := f.ControllerNode(t, "cache-ctl")
		if code, body := get(ctl, "/nix-cache-info"); code != 403 {
			t.Errorf("controller-tagged node: %d %q, want 403", code, body)
		}
	})
}
