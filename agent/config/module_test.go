package config

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const moduleExample = "testdata/module-example.json"

// repoRoot returns the repository root (this package is agent/config).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireNix skips the test unless nix-instantiate runs here.
func requireNix(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Skip("nix-instantiate not found: checking the NixOS module needs nix (Debian: apt-get install nix-bin)")
	}
	if out, err := exec.Command(bin, "--eval", "--expr", "1").CombinedOutput(); err != nil {
		t.Skipf("nix-instantiate cannot evaluate here (%v): %s", err, out)
	}
	return bin
}

// nixEval evaluates attr of the module's stub evaluation as JSON.
func nixEval(t *testing.T, attr string) []byte {
	t.Helper()
	bin := requireNix(t)
	cmd := exec.Command(bin, "--eval", "--strict", "--json",
		filepath.Join(repoRoot(t), "nixos-module", "stub", "eval.nix"), "-A", attr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate -A %s: %v\n%s", attr, err, stderr.String())
	}
	return bytes.TrimSpace(out)
}

func TestModuleExampleLoads(t *testing.T) {
	c, err := Load(moduleExample)
	if err != nil {
		t.Fatalf("the NixOS module's rendering of nixos-module/example.nix does not load: %v", err)
	}
	if c.HostName != "web1" || c.FlakeHost != "web1" {
		t.Errorf("HostName %q FlakeHost %q, want web1", c.HostName, c.FlakeHost)
	}
	if c.ConfirmTimeout.Duration != 90*time.Second || c.MaxConfirmTimeout.Duration != 15*time.Minute {
		t.Errorf("confirm %v max %v, want 90s (a number of seconds in the file) and 15m", c.ConfirmTimeout, c.MaxConfirmTimeout)
	}
	if len(c.HealthChecks) != 3 || c.HealthChecks[0].ExpectStatus != 200 || c.HealthChecks[0].Retries != 3 {
		t.Errorf("health checks = %+v, want 3 with the http one defaulting to status 200", c.HealthChecks)
	}
	if c.UnitName != DefaultUnitName || c.SystemdRunPath != DefaultSystemdRunPath {
		t.Errorf("UnitName %q SystemdRunPath %q, want the defaults", c.UnitName, c.SystemdRunPath)
	}
}

// TestModuleRendersExample evaluates nixos-module/default.nix for
// nixos-module/example.nix (with the stub lib) and wants exactly the
// committed testdata. Regenerate with nixos-module/render-example.sh.
func TestModuleRendersExample(t *testing.T) {
	got := nixEval(t, "json")
	var rendered string
	if err := json.Unmarshal(got, &rendered); err != nil {
		t.Fatalf("decode nix output: %v", err)
	}
	want, err := os.ReadFile(moduleExample)
	if err != nil {
		t.Fatal(err)
	}
	if rendered != string(want) {
		t.Errorf("the module renders\n%s\nbut %s holds\n%s\nrun nixos-module/render-example.sh", rendered, moduleExample, want)
	}

	var failed []string
	if err := json.Unmarshal(nixEval(t, "failedAssertions"), &failed); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Errorf("module assertions fail for the example: %q", failed)
	}

	var unit struct {
		RestartIfChanged bool              `json:"restartIfChanged"`
		StopIfChanged    bool              `json:"stopIfChanged"`
		ServiceConfig    map[string]any    `json:"serviceConfig"`
		UnitConfig       map[string]any    `json:"unitConfig"`
		Environment      map[string]string `json:"environment"`
	}
	if err := json.Unmarshal(nixEval(t, "unit"), &unit); err != nil {
		t.Fatal(err)
	}
	exec, _ := unit.ServiceConfig["ExecStart"].(string)
	if !strings.Contains(exec, "/bin/panther-agent run --config /nix/store/") || !strings.HasSuffix(exec, "-panther-agent.json '--log-level=debug'") {
		t.Errorf("ExecStart = %q, want panther-agent run --config <store file> and the extra args", exec)
	}
	if unit.RestartIfChanged || unit.StopIfChanged || unit.ServiceConfig["KillMode"] != "process" || unit.ServiceConfig["Restart"] != "always" {
		t.Errorf("unit = %+v, want no restart or stop on change, KillMode=process, Restart=always", unit)
	}
	if v, ok := unit.UnitConfig["X-StopOnRemoval"]; !ok || v != false {
		t.Errorf("unitConfig X-StopOnRemoval = %v, want false: a configuration without the agent must not stop it mid-switch", v)
	}
	if unit.Environment["HOME"] != DefaultStateDir {
		t.Errorf("HOME = %q, want the state dir (ProtectHome hides /root)", unit.Environment["HOME"])
	}
}

// TestExampleCommentMatches wants the pretty copy in example.nix's header to
// be the committed testdata.
func TestExampleCommentMatches(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "nixos-module", "example.nix"))
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(line, "# BEGIN rendered"):
			in = true
		case strings.HasPrefix(line, "# END rendered"):
			in = false
		case in:
			block = append(block, strings.TrimPrefix(line, "#   "))
		}
	}
	want, err := os.ReadFile(moduleExample)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, want, "", "  "); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(block, "\n"); got != pretty.String() {
		t.Errorf("example.nix's rendered copy differs from %s; run nixos-module/render-example.sh\n got:\n%s\nwant:\n%s", moduleExample, got, pretty.String())
	}
}

// TestNixFilesParse parses every .nix file of the module and the flake.
func TestNixFilesParse(t *testing.T) {
	bin := requireNix(t)
	root := repoRoot(t)
	files := []string{filepath.Join(root, "flake.nix")}
	err := filepath.WalkDir(filepath.Join(root, "nixos-module"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".nix") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, root+"/"), func(t *testing.T) {
			if out, err := exec.Command(bin, "--parse", f).CombinedOutput(); err != nil {
				t.Errorf("nix-instantiate --parse %s: %v\n%s", f, err, out)
			}
		})
	}
}
