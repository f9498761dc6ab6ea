package nix

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// testLogger logs to the test at the level of PANTHER_TEST_LOG_LEVEL
// (default warn).
func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{
		Name:   t.Name(),
		Level:  hclog.LevelFromString(cmp.Or(os.Getenv("PANTHER_TEST_LOG_LEVEL"), "warn")),
		Output: hclog.DefaultOutput,
	})
}

// testEnviron is the fixed environment the unit tests give Nix, so what
// they record does not depend on the machine.
var testEnviron = []string{"PATH=/usr/bin:/bin", "HOME=/root"}

func newFake(t *testing.T, respond func(c Cmd) FakeResult, extra ...string) (*Nix, *FakeRunner) {
	t.Helper()
	f := &FakeRunner{Respond: respond}
	n := New(Options{Runner: f, ExtraConfig: extra, Environ: testEnviron}, testLogger(t))
	return n, f
}

func TestCommonFlags(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		extra   []string
		want    string
	}{
		{
			name: "base only",
			want: "extra-experimental-features = nix-command flakes",
		},
		{
			name:  "extra lines",
			extra: []string{"sandbox = false", "substituters ="},
			want:  "extra-experimental-features = nix-command flakes\nsandbox = false\nsubstituters =",
		},
		{
			name:    "inherited NIX_CONFIG comes first",
			environ: []string{"NIX_CONFIG=access-tokens = x=y\n", "A=b"},
			extra:   []string{"sandbox = false"},
			want:    "access-tokens = x=y\nextra-experimental-features = nix-command flakes\nsandbox = false",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &FakeRunner{Respond: func(Cmd) FakeResult { return FakeResult{Stdout: `["a"]`} }}
			n := New(Options{Runner: f, ExtraConfig: tt.extra, Environ: append(tt.environ, "PATH=/bin")}, nil)
			if _, err := n.Hosts(context.Background(), "path:/f"); err != nil {
				t.Fatal(err)
			}
			env := f.Cmds()[0].Env
			var got []string
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
					got = append(got, v)
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("NIX_CONFIG = %q, want exactly %q", got, tt.want)
			}
			if !slices.Contains(env, "PATH=/bin") {
				t.Errorf("environment lost PATH: %q", env)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	ok := func(stdout string) func(Cmd) FakeResult {
		return func(Cmd) FakeResult { return FakeResult{Stdout: stdout} }
	}
	tests := []struct {
		name    string
		respond func(Cmd) FakeResult
		call    func(n *Nix) (any, error)
		want    any
		calls   []string
	}{
		{
			name:    "build",
			respond: ok(`[{"drvPath":"/nix/store/d.drv","outputs":{"out":"/nix/store/abc-x"}}]`),
			call: func(n *Nix) (any, error) {
				return n.Build(context.Background(), "path:/f#nixosConfigurations.a.config.system.build.toplevel", nil)
			},
			want:  "/nix/store/abc-x",
			calls: []string{"nix build --json --no-link -L path:/f#nixosConfigurations.a.config.system.build.toplevel --no-update-lock-file --no-write-lock-file"},
		},
		{
			name:    "hosts",
			respond: ok(`["alpha","beta"]`),
			call:    func(n *Nix) (any, error) { return n.Hosts(context.Background(), "path:/f") },
			want:    []string{"alpha", "beta"},
			calls:   []string{"nix eval --json path:/f#nixosConfigurations --apply builtins.attrNames --no-update-lock-file --no-write-lock-file"},
		},
		{
			name:    "warnings",
			respond: ok(`["w1","w2"]`),
			call:    func(n *Nix) (any, error) { return n.Warnings(context.Background(), "path:/f", "web-1") },
			want:    []string{"w1", "w2"},
			calls:   []string{"nix eval --json path:/f#nixosConfigurations.web-1.config.warnings --no-update-lock-file --no-write-lock-file"},
		},
		{
			name:    "diff closures",
			respond: ok("foo: 1.0 → 1.1, \x1b[31;1m+19.5 KiB\x1b[0m\n"),
			call:    func(n *Nix) (any, error) { return n.DiffClosures(context.Background(), "/nix/store/a", "/nix/store/b") },
			want:    []ClosureChange{{Name: "foo", Old: []string{"1.0"}, New: []string{"1.1"}, SizeDelta: 19968}},
			calls:   []string{"nix store diff-closures /nix/store/a /nix/store/b"},
		},
		{
			name: "diff closures of a first deploy",
			call: func(n *Nix) (any, error) { return n.DiffClosures(context.Background(), "", "/nix/store/b") },
			want: []ClosureChange(nil),
		},
		{
			name: "set profile",
			call: func(n *Nix) (any, error) {
				return nil, n.SetProfile(context.Background(), "/nix/var/nix/profiles/system", "/nix/store/b")
			},
			calls: []string{"nix-env -p /nix/var/nix/profiles/system --set /nix/store/b"},
		},
		{
			name: "switch generation",
			call: func(n *Nix) (any, error) {
				return nil, n.SwitchGeneration(context.Background(), "/p/system", 41)
			},
			calls: []string{"nix-env -p /p/system --switch-generation 41"},
		},
		{
			name:  "keep generations",
			call:  func(n *Nix) (any, error) { return nil, n.KeepGenerations(context.Background(), "/p/system", 5) },
			calls: []string{"nix-env -p /p/system --delete-generations +5"},
		},
		{
			name:    "generations of a missing profile",
			respond: ok(""),
			call:    func(n *Nix) (any, error) { return n.Generations(context.Background(), "/nonexistent/system") },
			want:    []Generation(nil),
			calls:   []string{"nix-env -p /nonexistent/system --list-generations"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, f := newFake(t, tt.respond)
			got, err := tt.call(n)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			if calls := f.Calls(); !slices.Equal(calls, tt.calls) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(tt.calls, "\n"))
			}
		})
	}
}

// TestProfileStore: with ProfileStore set, every nix-env profile command
// names the store (the agent gives "local" so that it does not need a
// nix-daemon); nix commands are left alone.
func TestProfileStore(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func(n *Nix) (any, error)
		want  any
		calls []string
	}{
		{
			name:  "set profile",
			call:  func(n *Nix) (any, error) { return nil, n.SetProfile(ctx, "/p/system", "/nix/store/b") },
			calls: []string{"nix-env --store local -p /p/system --set /nix/store/b"},
		},
		{
			name:  "switch generation",
			call:  func(n *Nix) (any, error) { return nil, n.SwitchGeneration(ctx, "/p/system", 4) },
			calls: []string{"nix-env --store local -p /p/system --switch-generation 4"},
		},
		{
			name:  "keep generations",
			call:  func(n *Nix) (any, error) { return nil, n.KeepGenerations(ctx, "/p/system", 3) },
			calls: []string{"nix-env --store local -p /p/system --delete-generations +3"},
		},
		{
			name:  "list generations",
			call:  func(n *Nix) (any, error) { return n.Generations(ctx, "/p/system") },
			want:  []Generation(nil),
			calls: []string{"nix-env --store local -p /p/system --list-generations"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &FakeRunner{}
			n := New(Options{Runner: f, Environ: testEnviron, ProfileStore: "local"}, testLogger(t))
			got, err := tt.call(n)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			if calls := f.Calls(); !slices.Equal(calls, tt.calls) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(tt.calls, "\n"))
			}
		})
	}
}

func TestErrors(t *testing.T) {
	var manyLines strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&manyLines, "line %d\n", i)
	}
	manyLines.WriteString("\x1b[31;1merror:\x1b[0m builder for '/nix/store/x.drv' failed with exit code 1\n")

	tests := []struct {
		name      string
		respond   func(Cmd) FakeResult
		call      func(n *Nix) error
		wantIs    error
		wantCode  int
		wantTail  string // suffix of StderrTail
		wantLines int    // lines kept in StderrTail (0: do not check)
		wantMsg   string // substring of Error()
	}{
		{
			name:      "build failure keeps the last 20 lines, uncolored",
			respond:   func(Cmd) FakeResult { return FakeResult{Stderr: manyLines.String(), ExitCode: 1} },
			call:      func(n *Nix) error { _, err := n.Build(context.Background(), "path:/f#x", nil); return err },
			wantCode:  1,
			wantTail:  "line 30\nerror: builder for '/nix/store/x.drv' failed with exit code 1",
			wantLines: 20,
			wantMsg:   "nix build --json --no-link -L path:/f#x --no-update-lock-file --no-write-lock-file: exit status 1: error: builder for '/nix/store/x.drv' failed",
		},
		{
			name:     "nix missing",
			respond:  func(Cmd) FakeResult { return FakeResult{Err: exec.ErrNotFound} },
			call:     func(n *Nix) error { _, err := n.Hosts(context.Background(), "path:/f"); return err },
			wantIs:   exec.ErrNotFound,
			wantCode: -1,
		},
		{
			name:    "no out path",
			respond: func(Cmd) FakeResult { return FakeResult{Stdout: `[{"outputs":{"dev":"/nix/store/d"}}]`} },
			call:    func(n *Nix) error { _, err := n.Build(context.Background(), "path:/f#x", nil); return err },
			wantIs:  ErrNoOutput,
		},
		{
			name:    "unparsable eval output",
			respond: func(Cmd) FakeResult { return FakeResult{Stdout: `{"not": "a list"}`} },
			call:    func(n *Nix) error { _, err := n.Hosts(context.Background(), "path:/f"); return err },
			wantIs:  ErrParse,
		},
		{
			name: "bad host",
			call: func(n *Nix) error {
				_, err := n.Warnings(context.Background(), "path:/f", `a"; builtins.abort "x`)
				return err
			},
			wantIs: ErrBadHost,
		},
		{
			name:   "keep zero generations",
			call:   func(n *Nix) error { return n.KeepGenerations(context.Background(), "/p", 0) },
			wantIs: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := newFake(t, tt.respond)
			err := tt.call(n)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
			var ne *Error
			if tt.wantCode == 0 {
				return
			}
			if !errors.As(err, &ne) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if ne.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d", ne.ExitCode, tt.wantCode)
			}
			if !strings.HasSuffix(ne.StderrTail, tt.wantTail) {
				t.Errorf("StderrTail = %q, want suffix %q", ne.StderrTail, tt.wantTail)
			}
			if tt.wantLines > 0 {
				if got := len(strings.Split(ne.StderrTail, "\n")); got != tt.wantLines {
					t.Errorf("StderrTail has %d lines, want %d", got, tt.wantLines)
				}
			}
		})
	}
}

func TestBuildStreamsStderr(t *testing.T) {
	n, _ := newFake(t, func(Cmd) FakeResult {
		return FakeResult{
			Stdout: `[{"outputs":{"out":"/nix/store/x"}}]`,
			Stderr: "building '/nix/store/x.drv'...\r\nx> \x1b[1mstep 1\x1b[0m\nx> no newline at end",
		}
	})
	var lines []string
	if _, err := n.Build(context.Background(), "path:/f#x", func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"building '/nix/store/x.drv'...", "", "x> step 1", "x> no newline at end"}
	if !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
}

func TestCanceledContext(t *testing.T) {
	n, f := newFake(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := n.Build(ctx, "path:/f#x", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if len(f.Calls()) != 1 {
		t.Errorf("calls: %q", f.Calls())
	}
}

func TestToplevel(t *testing.T) {
	tests := []struct {
		name, host, want string
		wantErr          error
	}{
		{name: "plain", host: "alpha", want: "path:/f#nixosConfigurations.alpha.config.system.build.toplevel"},
		{name: "dash and digit", host: "web-01", want: "path:/f#nixosConfigurations.web-01.config.system.build.toplevel"},
		{name: "dot", host: "a.b", wantErr: ErrBadHost},
		{name: "quote", host: `a"b`, wantErr: ErrBadHost},
		{name: "empty", host: "", wantErr: ErrBadHost},
		{name: "leading dash", host: "-a", wantErr: ErrBadHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Toplevel("path:/f", tt.host)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("Toplevel = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
