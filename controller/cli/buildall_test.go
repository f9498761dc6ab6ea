package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/lab/nixtest"
)

// runCtl runs pantherctl in-process and returns its exit code and output.
func runCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := Run(ctx, args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	t.Logf("pantherctl %s: exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return code, out.String(), errb.String()
}

// useNix gives this process the NIX_CONFIG the tests' nix needs, as a user
// would export it for pantherctl.
func useNix(t *testing.T) {
	t.Helper()
	env := nixtest.Env(t)
	for _, kv := range env.Environ {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			t.Setenv("NIX_CONFIG", v)
		}
	}
}

func TestBuildAllLocalNix(t *testing.T) {
	useNix(t)
	flake := nixtest.Flake(t, map[string]string{
		"alpha": nixtest.Good, "beta": nixtest.BuildFail, "gamma": nixtest.EvalError, "delta": nixtest.GoodV2,
	})
	// A builder nobody built before: every host really builds, so its log
	// holds the builder's output (an unchanged flake would be in the store).
	nonce := fmt.Sprintf("\n# %s %d\n", t.Name(), time.Now().UnixNano())
	f, err := os.OpenFile(filepath.Join(flake, "builder.sh"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(nonce); err != nil {
		t.Fatal(err)
	}
	f.Close()
	inv := `{"hosts": {"alpha": {"tags": ["web"]}, "delta": {"tags": ["web"]}, "beta": {"tags": ["db"]}}}`
	if err := os.WriteFile(filepath.Join(flake, inventory.FileName), []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("text", func(t *testing.T) {
		logs := t.TempDir()
		code, out, errOut := runCtl(t, "build-all", "--jobs", "2", "--flake", flake, "--log-dir", logs)
		if code != ExitFailed {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailed, out, errOut)
		}
		dir := filepath.Join(logs, "build")
		for _, want := range []string{
			"building 4 hosts locally, 2 at a time",
			"alpha: started", "alpha: done in",
			"beta: FAILED after", "failed with exit code 1 (log: " + filepath.Join(dir, "beta.log") + ")",
			"gamma: FAILED after", "evaluation of gamma fails on purpose",
			"delta: done in",
			"Passed: 2\nFailed: 2\nTotal: 4\n",
			"Failed hosts:\n  beta   " + filepath.Join(dir, "beta.log") + "\n  gamma  " + filepath.Join(dir, "gamma.log") + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "All hosts built successfully!") {
			t.Errorf("claims success:\n%s", out)
		}
		if !strings.Contains(errOut, "2 of 4 hosts failed to build") {
			t.Errorf("stderr: %s", errOut)
		}
		for host, want := range map[string][]string{
			"alpha": {"building the lab system of alpha (variant good)", "installed unit lab-hello.service", "done: /nix/store/", "built /nix/store/"},
			"delta": {"building the lab system of delta (variant good-v2)", "built /nix/store/"},
			"beta":  {"lab-broken.c:3:1: error: expected ';'", "make: *** [lab-broken] Error 1", "failed with exit code 1", "FAILED"},
			"gamma": {"evaluation of gamma fails on purpose", "FAILED"},
		} {
			b, err := os.ReadFile(filepath.Join(dir, host+".log"))
			if err != nil {
				t.Errorf("%s: no build log: %v", host, err)
				continue
			}
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s.log lacks %q:\n%s", host, w, b)
				}
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		logs := t.TempDir()
		code, out, errOut := runCtl(t, "build-all", "--jobs", "2", "--flake", flake, "--log-dir", logs, "--json")
		if code != ExitFailed {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		type event struct {
			Host, Event, Log, StorePath, Error string
			Summary                            bool
			Passed, Failed, Total, ExitCode    int
			FailedHosts                        []struct{ Host, Log, Error string }
		}
		var events []event
		var sum *event
		inFlight, maxInFlight := 0, 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var e event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("not JSON: %q: %v", line, err)
			}
			if e.Summary {
				sum = &e
				continue
			}
			events = append(events, e)
			// Events come in order, so the count of started-but-not-ended
			// builds is what ran at once.
			switch e.Event {
			case "started":
				inFlight++
				maxInFlight = max(maxInFlight, inFlight)
			case "done", "failed":
				inFlight--
			}
		}
		t.Logf("most builds in flight: %d", maxInFlight)
		if maxInFlight > 2 || maxInFlight < 1 {
			t.Errorf("%d builds ran at once with --jobs 2", maxInFlight)
		}
		got := map[string]string{}
		for _, e := range events {
			if e.Event != "started" {
				got[e.Host] = e.Event
			}
			if e.Event == "done" && !strings.HasPrefix(e.StorePath, "/nix/store/") {
				t.Errorf("%s done without a store path: %+v", e.Host, e)
			}
		}
		want := map[string]string{"alpha": "done", "beta": "failed", "gamma": "failed", "delta": "done"}
		if len(events) != 8 || len(got) != 4 {
			t.Errorf("events: %+v", events)
		}
		for h, w := range want {
			if got[h] != w {
				t.Errorf("%s: %q, want %q", h, got[h], w)
			}
		}
		if sum == nil {
			t.Fatalf("no summary object:\n%s", out)
		}
		if sum.Passed != 2 || sum.Failed != 2 || sum.Total != 4 || sum.ExitCode != ExitFailed {
			t.Errorf("summary: %+v", *sum)
		}
		var failed []string
		for _, f := range sum.FailedHosts {
			failed = append(failed, f.Host)
			if _, err := os.Stat(f.Log); err != nil || f.Error == "" {
				t.Errorf("failed host %s: log %q (%v), error %q", f.Host, f.Log, err, f.Error)
			}
		}
		if !slices.Equal(failed, []string{"beta", "gamma"}) {
			t.Errorf("failed hosts %v", failed)
		}
	})

	t.Run("selected hosts all build", func(t *testing.T) {
		code, out, errOut := runCtl(t, "build-all", "@web", "--flake", flake, "--log-dir", t.TempDir())
		if code != ExitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "Passed: 2\nFailed: 0\nTotal: 2\n") || !strings.Contains(out, "All hosts built successfully!") {
			t.Errorf("output:\n%s", out)
		}
		if strings.Contains(out, "beta") || strings.Contains(out, "gamma") {
			t.Errorf("built hosts outside @web:\n%s", out)
		}
	})

	t.Run("unknown host is a usage error", func(t *testing.T) {
		code, _, errOut := runCtl(t, "build-all", "nosuch", "--flake", flake, "--log-dir", t.TempDir())
		if code != ExitUsage || !strings.Contains(errOut, `"nosuch" is not in the flake`) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
}
