package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireSandbox skips unless this machine can boot sandboxes (fails when
// PANTHER_REQUIRE_INTEGRATION=1). The full behaviour is tested through
// lab/sandboxtest; these tests cover what only this package offers.
func requireSandbox(t *testing.T, netns bool) {
	t.Helper()
	if err := Check(netns); err != nil {
		if os.Getenv("PANTHER_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("sandbox: %v", err)
		}
		t.Skipf("sandbox: %v", err)
	}
}

func TestMissingErrorIsErrMissing(t *testing.T) {
	err := fmt.Errorf("boot: %w", &MissingError{Items: []string{"needs root", "missing commands: ip: apt-get install iproute2"}})
	if !errors.Is(err, ErrMissing) {
		t.Errorf("errors.Is(%v, ErrMissing) = false", err)
	}
	if got := err.Error(); !strings.Contains(got, "needs root; missing commands") {
		t.Errorf("message %q does not join the items", got)
	}
}

func TestToolsNamePackages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		netns bool
		want  string
	}{
		{name: "without netns", netns: false, want: ""},
		{name: "with netns", netns: true, want: "iproute2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			for _, tl := range tools(tc.netns) {
				if tl.pkg == "" {
					t.Errorf("%s has no package", tl.name)
				}
				if tl.name == "ip" {
					got = tl.pkg
				}
			}
			if got != tc.want {
				t.Errorf("package of ip = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBootValidatesOptions(t *testing.T) {
	requireSandbox(t, false)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{name: "no state dir", opts: Options{Name: "x"}, want: "StateDir is required"},
		{name: "bad name", opts: Options{Name: "Not_A_Host", StateDir: t.TempDir()}, want: "not a valid hostname"},
		{name: "bad owner", opts: Options{Name: "x", StateDir: t.TempDir(), Owner: "a/b"}, want: "owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Boot(t.Context(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Boot: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBootStopAndRemoveStale(t *testing.T) {
	requireSandbox(t, true)
	const owner = "panther-sandbox-unittest"
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup left by a process that no longer exists (PID 0 never does
	// under /proc), and one of a live process (this one).
	stale := filepath.Join(root, fmt.Sprintf("%s-0-gone-%s", owner, randomHex(2)))
	live := filepath.Join(root, fmt.Sprintf("%s-%d-live-%s", owner, os.Getpid(), randomHex(2)))
	for _, d := range []string{stale, live} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = removeCgroup(live, time.Second); _ = removeCgroup(stale, time.Second) })

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Boot(ctx, Options{Name: "core-test", StateDir: t.TempDir(), NetNS: true, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Exec(ctx, "hostname")
	if err != nil || strings.TrimSpace(string(out)) != "core-test" {
		t.Errorf("hostname = %q, %v", out, err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.PID()))
	if err != nil || !strings.Contains(string(env), "container="+owner+"\x00") {
		t.Errorf("systemd's environment lacks container=%s: %q, %v", owner, env, err)
	}
	if err := s.CutNetwork(ctx); err != nil {
		t.Errorf("CutNetwork: %v", err)
	}
	if err := s.RestoreNetwork(ctx); err != nil {
		t.Errorf("RestoreNetwork: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.CutNetwork(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("CutNetwork after Stop: %v, want ErrNotRunning", err)
	}

	// Boot swept the stale cgroup already; make another and sweep it
	// explicitly.
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Boot left the stale cgroup %s: %v", stale, err)
	}
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(owner); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveStale left %s: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("RemoveStale removed the live process's cgroup %s: %v", live, err)
	}
}
