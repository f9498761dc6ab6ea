package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/sandbox"
)

// requireLab skips the test (fails it when PANTHER_REQUIRE_INTEGRATION=1)
// unless this machine can run a lab: root, systemd and the sandbox tools,
// nix and a nix configuration it can build with.
func requireLab(t *testing.T) {
	t.Helper()
	var missing []string
	if err := sandbox.Check(true); err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := exec.LookPath("nix"); err != nil {
		missing = append(missing, "nix is not installed (apt-get install nix-bin)")
	} else if item := nix.CheckConfig(os.Environ()); item != "" {
		missing = append(missing, item)
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("PANTHER_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("lab: %s (PANTHER_REQUIRE_INTEGRATION=1 forbids skipping)", strings.Join(missing, "; "))
	}
	t.Skipf("lab: %s", strings.Join(missing, "; "))
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildBinaries builds pantherctl, panther-agent and panther-lab into one
// directory, as `make build` does, once per test process.
func buildBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "panther-lab-bin-")
		if buildErr != nil {
			return
		}
		for name, pkg := range map[string]string{
			"pantherctl":    "../controller/cmd/pantherctl",
			"panther-lab":   "./cmd/panther-lab",
			"panther-agent": "../agent/cmd/panther-agent",
		} {
			cmd := exec.Command("go", "build", "-tags", "ts_omit_peerapiserver", "-o", filepath.Join(binDir, name), pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg: pkg, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// TestMain removes the built binaries.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// run runs one of the built binaries and returns its exit code and output.
func run(t *testing.T, ctx context.Context, env []string, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(os.Environ()), env...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// TestDemo runs `pantherctl lab demo` as `make demo` does and checks its
// exit code, its summary and that it leaves nothing behind.
func TestDemo(t *testing.T) {
	requireLab(t)
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "lab")
	begin := time.Now()
	code, out, stderr := run(t, ctx, nil, filepath.Join(bins, "pantherctl"), "lab", "demo", "--dir", dir)
	t.Logf("demo: exit %d in %v", code, time.Since(begin).Round(time.Second))
	if code != 0 {
		t.Fatalf("demo exited %d\n--- stdout\n%s\n--- stderr\n%s", code, out, stderr)
	}
	sum := out[strings.LastIndex(out, "\nSummary"):]
	t.Logf("%s", sum)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`✓ 1\. build-all +exit 0`),
		regexp.MustCompile(`✓ 2\. deploy --all --dry-run +exit 0`),
		regexp.MustCompile(`✓ 3\. deploy --all +exit 0`),
		regexp.MustCompile(`✓ 4\. deploy alpha \(a change\) +exit 0`),
		regexp.MustCompile(`✓ 5\. rollback alpha --list +exit 0`),
		regexp.MustCompile(`✓ 6\. rollback alpha --rollback 1 +exit 0`),
		regexp.MustCompile(`✓ 7\. deploy alpha \(cuts the network\) +exit 4`),
		regexp.MustCompile(`✓ 8\. status +exit 0`),
		regexp.MustCompile(`All 8 steps behaved as shown`),
	} {
		if !want.MatchString(sum) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if strings.Contains(out, "✗") {
		t.Errorf("a step failed:\n%s", out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("demo given --dir left %s behind (want it kept only with --keep)", dir)
	}
	assertNoLeftovers(t)
}

// TestUpStatusDown starts a background lab, uses it with the printed line
// and stops it.
func TestUpStatusDown(t *testing.T) {
	requireLab(t)
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "lab")
	lab := filepath.Join(bins, "panther-lab")
	t.Cleanup(func() { run(t, context.Background(), nil, lab, "down", "--dir", dir) })

	code, out, stderr := run(t, ctx, nil, lab, "up", "--dir", dir)
	if code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", code, out, stderr)
	}
	line := regexp.MustCompile(`(?m)^export .*$`).FindString(out)
	if !strings.Contains(line, "PANTHER_CONTROL_URL=") || !strings.Contains(line, "PANTHER_NO_LOGS_NO_SUPPORT=true") {
		t.Fatalf("up printed no export line:\n%s", out)
	}
	env := strings.Fields(strings.TrimPrefix(line, "export "))

	// A second up reuses the running lab.
	if code, out2, _ := run(t, ctx, nil, lab, "up", "--dir", dir); code != 0 || !strings.Contains(out2, "already running") {
		t.Errorf("second up: exit %d\n%s", code, out2)
	}
	if code, got, _ := run(t, ctx, nil, lab, "env", "--dir", dir); code != 0 || strings.TrimSpace(got) != line {
		t.Errorf("env: exit %d, %q, want %q", code, got, line)
	}

	code, out, stderr = run(t, ctx, env, filepath.Join(bins, "pantherctl"), "status", "--all")
	if code != 0 {
		t.Fatalf("status --all with the lab's environment: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, h := range DefaultHosts() {
		if !strings.Contains(out, h) {
			t.Errorf("status lacks %s:\n%s", h, out)
		}
	}

	code, out, stderr = run(t, ctx, nil, lab, "down", "--dir", dir)
	if code != 0 {
		t.Fatalf("down: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("down left %s", dir)
	}
	assertNoLeftovers(t)
	if code, _, _ := run(t, ctx, nil, lab, "env", "--dir", dir); code == 0 {
		t.Error("env succeeded after down")
	}
}

// assertNoLeftovers fails when a lab cgroup or mount is left on the machine.
func assertNoLeftovers(t *testing.T) {
	t.Helper()
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), Owner+"-") {
				t.Errorf("cgroup %s/%s left behind", root, e.Name())
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), "panther-lab") {
		t.Errorf("a mount mentions panther-lab:\n%s", mi)
	}
}
