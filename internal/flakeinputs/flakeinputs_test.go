package flakeinputs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/flakeinputs"
	"github.com/pantheros/panther/lab/nixtest"
)

func TestUnlocked(t *testing.T) {
	lock := []byte(`{"nodes":{"dep":{"locked":{"type":"tarball","narHash":"x"}},"half":{"original":{}},
		"root":{"inputs":{"dep":"dep","half":"half","fol":["dep"]}}},"root":"root","version":7}`)
	for _, tc := range []struct {
		name     string
		declared []string
		lock     []byte
		want     []string
	}{
		{"all locked", []string{"dep", "fol"}, lock, nil},
		{"missing entry", []string{"dep", "other"}, lock, []string{"other"}},
		{"entry without locked", []string{"half"}, lock, []string{"half"}},
		{"no lock file", []string{"a", "b"}, nil, []string{"a", "b"}},
		{"no inputs no lock", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := flakeinputs.Unlocked(tc.declared, tc.lock)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := flakeinputs.Unlocked([]string{"a"}, []byte("{")); !errors.Is(err, flakeinputs.ErrLock) {
		t.Fatalf("bad json: %v", err)
	}
}

// TestCheckLockNamesMissingInput: with real nix, an input declared in
// flake.nix (under inputs, or only as an argument of outputs) without a
// lock entry is named with the command that fixes it.
func TestCheckLockNamesMissingInput(t *testing.T) {
	n := nixtest.Nix(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	write(t, dir, "flake.nix", `{
  inputs.dep = { url = "http://127.0.0.1:9/dep.tar.gz"; flake = false; };
  outputs = { self, dep, extra }: { };
}`)
	err := flakeinputs.CheckLock(ctx, n, dir)
	var le *flakeinputs.LockError
	if !errors.As(err, &le) || !le.NoLockFile || strings.Join(le.Missing, ",") != "dep,extra" {
		t.Fatalf("no lock file: got %v", err)
	}
	if !strings.Contains(err.Error(), "nix flake lock") || !strings.Contains(err.Error(), `"dep"`) {
		t.Fatalf("message lacks the input or the fix: %v", err)
	}
	write(t, dir, "flake.lock", `{"nodes":{"dep":{"locked":{"type":"tarball","url":"http://127.0.0.1:9/dep.tar.gz","narHash":"sha256-QF/XDfUipORWF4vDObStklBFOQPmfGfqjee5FxsLzUE="}},
		"root":{"inputs":{"dep":"dep"}}},"root":"root","version":7}`)
	err = flakeinputs.CheckLock(ctx, n, dir)
	if !errors.As(err, &le) || le.NoLockFile || strings.Join(le.Missing, ",") != "extra" {
		t.Fatalf("missing entry: got %v", err)
	}
	write(t, dir, "flake.nix", `{ inputs.dep = { url = "http://127.0.0.1:9/dep.tar.gz"; flake = false; }; outputs = { self, dep }: { }; }`)
	if err := flakeinputs.CheckLock(ctx, n, dir); err != nil {
		t.Fatalf("complete lock refused: %v", err)
	}
	noInputs := t.TempDir()
	write(t, noInputs, "flake.nix", `{ outputs = { self }: { }; }`)
	if err := flakeinputs.CheckLock(ctx, n, noInputs); err != nil {
		t.Fatalf("flake without inputs and lock refused: %v", err)
	}
}

// TestStoreAdd: a NAR that is exactly the signed one enters the store under
// the signed path; a truncated, corrupt, oversized or mislabelled one never
// does.
func TestStoreAdd(t *testing.T) {
	n := nixtest.Nix(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := t.TempDir()
	// Unique content: the path must not be in the store yet.
	write(t, src, "msg.txt", "input of "+t.Name()+" "+time.Now().String())
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, src, "bin/run", "#!/bin/sh\n")
	os.Chmod(filepath.Join(src, "bin/run"), 0o755)
	os.Symlink("msg.txt", filepath.Join(src, "link"))
	// The reference: the path nix would make of the tree, and its NAR,
	// without adding it (the store must not have it before Add).
	ref, nar, narHash := narOf(t, src)
	in := flakeinputs.Input{Name: "dep", StorePath: ref, NarHash: narHash, NarSize: int64(len(nar))}
	s := flakeinputs.Store{Nix: n, TempDir: t.TempDir(), MaxBytes: 1 << 20}
	missing, err := s.Missing(ctx, []string{ref})
	if err != nil || len(missing) != 1 {
		t.Fatalf("Missing before Add: %v %v", missing, err)
	}
	b := nar
	corrupt := append([]byte(nil), b...)
	corrupt[len(corrupt)/2] ^= 1
	for _, tc := range []struct {
		name string
		in   flakeinputs.Input
		body []byte
		max  int64
		want error
	}{
		{"truncated", in, b[:len(b)-8], 1 << 20, flakeinputs.ErrTruncated},
		{"longer", in, append(append([]byte(nil), b...), 0), 1 << 20, flakeinputs.ErrTruncated},
		{"corrupt", in, corrupt, 1 << 20, flakeinputs.ErrHashMismatch},
		{"over the limit", in, b, int64(len(b)) - 1, flakeinputs.ErrTooLarge},
		{"other name", flakeinputs.Input{Name: "dep", StorePath: ref[:len(ref)-len("source")] + "other", NarHash: in.NarHash, NarSize: in.NarSize}, b, 1 << 20, flakeinputs.ErrPathMismatch},
		{"bad path", flakeinputs.Input{Name: "dep", StorePath: "/etc/passwd", NarHash: in.NarHash, NarSize: in.NarSize}, b, 1 << 20, flakeinputs.ErrBadInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.MaxBytes = tc.max
			_, err := s.Add(ctx, tc.in, bytes.NewReader(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == flakeinputs.ErrTooLarge && !strings.Contains(err.Error(), "limit of") {
				t.Fatalf("limit not named: %v", err)
			}
			if m, _ := s.Missing(ctx, []string{ref}); len(m) != 1 {
				t.Fatalf("%s entered the store", ref)
			}
		})
	}
	s.MaxBytes = 1 << 20
	if _, err := s.Add(ctx, in, bytes.NewReader(b)); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if m, _ := s.Missing(ctx, []string{ref}); len(m) != 0 {
		t.Fatalf("%s not in the store after Add", ref)
	}
	if infos, err := n.PathInfos(ctx, ref); err != nil || infos[0].NarHash != narHash || infos[0].NarSize != int64(len(nar)) {
		t.Fatalf("path-info of the added path: %+v %v; want NAR hash %s, size %d", infos, err, narHash, len(nar))
	}
	if got, err := os.ReadFile(filepath.Join(ref, "msg.txt")); err != nil || !strings.HasPrefix(string(got), "input of") {
		t.Fatalf("content: %q %v", got, err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRootsKeepTheMostRecentlyUsed: an input added or used is a garbage
// collector root; only the KeepRoots most recently used stay rooted.
func TestRootsKeepTheMostRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	s := flakeinputs.Store{RootDir: dir, KeepRoots: 2}
	p := func(c string) string { return "/nix/store/" + strings.Repeat(c, 32) + "-source" }
	rooted := func() []string {
		var out []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil || filepath.Base(target) != e.Name() {
				t.Fatalf("root %s -> %s, %v", e.Name(), target, err)
			}
			out = append(out, target)
		}
		return out
	}
	for _, c := range []string{"a", "b", "c"} {
		s.Use([]string{p(c)})
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Join(rooted(), " "); got != p("b")+" "+p("c") {
		t.Fatalf("after a, b, c: rooted %s", got)
	}
	s.Use([]string{p("b")})
	time.Sleep(5 * time.Millisecond)
	s.Use([]string{p("a")})
	if got := strings.Join(rooted(), " "); got != p("a")+" "+p("b") {
		t.Fatalf("after b, a: rooted %s", got)
	}
}
