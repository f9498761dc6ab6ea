package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/inventory"
)

type fakeEval struct {
	hosts    []string
	hostsErr error
	warnings map[string][]string
	warnErr  map[string]error
}

func (f *fakeEval) Hosts(ctx context.Context, ref string) ([]string, error) {
	return f.hosts, f.hostsErr
}

func (f *fakeEval) Warnings(ctx context.Context, ref, host string) ([]string, error) {
	return f.warnings[host], f.warnErr[host]
}

// fakePinger answers for the addresses in up and records every ping.
type fakePinger struct {
	up    map[string]Pong
	mu    sync.Mutex
	addrs []string
}

func (f *fakePinger) Ping(ctx context.Context, addr string) (Pong, error) {
	f.mu.Lock()
	f.addrs = append(f.addrs, addr)
	f.mu.Unlock()
	if p, ok := f.up[addr]; ok {
		return p, nil
	}
	<-ctx.Done() // an unreachable host answers nothing until the timeout
	return Pong{}, errors.New("cannot reach " + addr + ": " + ctx.Err().Error())
}

type fakeGit struct {
	changes []string
	err     error
}

func (f fakeGit) Changes(ctx context.Context, dir string) ([]string, error) { return f.changes, f.err }

// table renders a report as "check host status" lines for comparison.
func table(r Report) []string {
	var out []string
	for _, c := range r.Checks {
		out = append(out, strings.Join(strings.Fields(c.Name+" "+c.Host+" "+string(c.Status)), " "))
	}
	return out
}

func TestChecklist(t *testing.T) {
	pong := Pong{RTT: 3 * time.Millisecond, Connect: 40 * time.Millisecond, AgentVersion: "1.0", Generation: 4, SystemState: "running"}
	inv := &inventory.Inventory{Hosts: map[string]inventory.Host{
		"alpha": {Name: "alpha", Tags: []string{"web"}},
		"beta":  {Name: "beta", Tags: []string{"web"}, TailnetName: "beta-ts"},
	}}
	tests := []struct {
		name      string
		eval      *fakeEval
		git       fakeGit
		up        []string
		selectors []string
		all       bool
		want      []string
		ok        bool
		detail    map[string]string // "check host" → substring of Detail
	}{
		{
			name: "all good",
			eval: &fakeEval{hosts: []string{"alpha", "beta"}},
			up:   []string{"alpha", "beta-ts"},
			all:  true,
			want: []string{
				"flake evaluates ok", "git tree clean ok",
				"in flake alpha ok", "agent reachable alpha ok", "config.warnings alpha ok",
				"in flake beta ok", "agent reachable beta ok", "config.warnings beta ok",
			},
			ok:     true,
			detail: map[string]string{"agent reachable alpha": "rtt 3ms", "agent reachable beta": "as beta-ts"},
		},
		{
			name:      "one unreachable, one unknown, warnings and a dirty tree",
			eval:      &fakeEval{hosts: []string{"alpha", "beta"}, warnings: map[string][]string{"alpha": {"w1", "w2"}}},
			git:       fakeGit{changes: []string{" M flake.nix", "?? new.nix"}},
			up:        []string{"alpha"},
			selectors: []string{"ghost", "@web"},
			want: []string{
				"flake evaluates ok", "git tree clean WARN",
				"in flake alpha ok", "agent reachable alpha ok", "config.warnings alpha WARN",
				"in flake beta ok", "agent reachable beta FAIL", "config.warnings beta ok",
				"in flake ghost FAIL", "agent reachable ghost FAIL", "config.warnings ghost skip",
			},
			detail: map[string]string{"git tree clean": "2 uncommitted", "in flake ghost": "hosts: alpha, beta", "agent reachable beta": "cannot reach beta-ts"},
		},
		{
			name:      "flake does not evaluate",
			eval:      &fakeEval{hostsErr: errors.New("error: syntax error,\nunexpected '}'")},
			git:       fakeGit{err: ErrNotGit},
			up:        []string{"alpha"},
			selectors: []string{"alpha"},
			want: []string{
				"flake evaluates FAIL", "git tree clean skip",
				"in flake alpha skip", "agent reachable alpha ok", "config.warnings alpha skip",
			},
			detail: map[string]string{"flake evaluates": "syntax error, unexpected"},
		},
		{
			name:      "a host's config does not evaluate",
			eval:      &fakeEval{hosts: []string{"alpha"}, warnErr: map[string]error{"alpha": errors.New("error: throw")}},
			up:        []string{"alpha"},
			selectors: []string{"alpha"},
			want: []string{
				"flake evaluates ok", "git tree clean ok",
				"in flake alpha ok", "agent reachable alpha ok", "config.warnings alpha FAIL",
			},
		},
		{
			name:      "unknown tag",
			eval:      &fakeEval{hosts: []string{"alpha"}},
			selectors: []string{"@db"},
			want:      []string{"flake evaluates ok", "git tree clean ok", "hosts selected FAIL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &fakePinger{up: map[string]Pong{}}
			for _, a := range tt.up {
				p.up[a] = pong
			}
			cl := New(tt.eval, p, tt.git, Options{PingTimeout: 50 * time.Millisecond}, nil)
			rep := cl.Run(context.Background(), Input{FlakeDir: "/flake", FlakeRef: "path:/flake", Inventory: inv, Selectors: tt.selectors, All: tt.all})
			if got := table(rep); !slices.Equal(got, tt.want) {
				t.Errorf("checks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if rep.OK() != tt.ok {
				t.Errorf("OK() = %v, want %v", rep.OK(), tt.ok)
			}
			for key, sub := range tt.detail {
				found := false
				for _, c := range rep.Checks {
					if strings.TrimSpace(c.Name+" "+c.Host) == key {
						found = true
						if !strings.Contains(c.Detail, sub) {
							t.Errorf("%s: detail %q lacks %q", key, c.Detail, sub)
						}
					}
				}
				if !found {
					t.Errorf("no check %q", key)
				}
			}
			var buf bytes.Buffer
			rep.WriteTable(&buf)
			if tt.ok != strings.Contains(buf.String(), "Preflight passed") {
				t.Errorf("table:\n%s", buf.String())
			}
		})
	}
}

func TestWriteTableListsItems(t *testing.T) {
	rep := Report{Checks: []Check{
		{Name: CheckGit, Status: Warn, Detail: "1 uncommitted changes", Items: []string{" M flake.nix"}},
		{Name: CheckReachable, Host: "ghost", Status: Fail, Detail: "cannot reach ghost"},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	want := `CHECK            HOST   RESULT  DETAIL
git tree clean   -      WARN    1 uncommitted changes
                                   M flake.nix
agent reachable  ghost  FAIL    cannot reach ghost

Preflight FAILED: 1 of 2 checks (ghost: agent reachable)
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	rep := Report{Checks: []Check{
		{Name: CheckReachable, Host: "alpha", Status: OK, RTT: 1500 * time.Microsecond},
		{Name: CheckReachable, Host: "ghost", Status: Fail, Detail: "no"},
	}}
	var buf bytes.Buffer
	rep.WriteJSON(&buf, 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines:\n%s", buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["check"] != CheckReachable || first["host"] != "alpha" || first["rttSeconds"] != 0.0015 {
		t.Errorf("first = %v", first)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum["summary"] != true || sum["ok"] != false || sum["failed"] != 1.0 || sum["exitCode"] != 3.0 {
		t.Errorf("summary = %v", sum)
	}
}

// requireGit skips when the git binary is missing.
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (Debian package git)")
	}
}

func TestExecGit(t *testing.T) {
	requireGit(t)
	ctx := context.Background()
	notGit := t.TempDir()
	if _, err := (ExecGit{}).Changes(ctx, notGit); !errors.Is(err, ErrNotGit) {
		t.Errorf("outside a repository: err = %v, want ErrNotGit", err)
	}

	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(rel, s string) {
		t.Helper()
		p := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("infra/flake.nix", "{}\n")
	write("README", "x\n")
	git("add", ".")
	git("commit", "-qm", "init")

	flake := filepath.Join(repo, "infra")
	if ch, err := (ExecGit{}).Changes(ctx, flake); err != nil || len(ch) != 0 {
		t.Errorf("clean tree: %v, %v", ch, err)
	}
	write("infra/flake.nix", "{ }\n")
	write("infra/hosts/new.nix", "{}\n")
	write("README", "changed outside the flake\n")
	ch, err := (ExecGit{}).Changes(ctx, flake)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{" M infra/flake.nix", "?? infra/hosts/new.nix"}
	if !slices.Equal(ch, want) {
		t.Errorf("changes = %q, want %q (only the flake's subtree)", ch, want)
	}
}
