package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tarNames lists "name type" of every entry of a tar, in order.
func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		out = append(out, hdr.Name)
	}
}

func TestPackDeterministic(t *testing.T) {
	mk := func(t *testing.T, perm os.FileMode, mtime time.Time) string {
		t.Helper()
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"flake.nix":         "{ outputs = _: {}; }",
			"hosts/alpha.nix":   "{ }",
			"hosts/beta.nix":    "{ }",
			"a-b":               "sorts between a and a/",
			"a/z":               "z",
			"empty/.keep":       "",
			"scripts/deploy.sh": "#!/bin/sh\n",
		})
		if err := os.Chmod(filepath.Join(dir, "scripts/deploy.sh"), 0o700|perm&0o055); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "flake.nix"), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("hosts/alpha.nix", filepath.Join(dir, "default.nix")); err != nil {
			t.Fatal(err)
		}
		_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
			_ = os.Chtimes(p, mtime, mtime)
			return nil
		})
		return dir
	}
	pack := func(t *testing.T, dir string) ([]byte, Packed) {
		t.Helper()
		var buf bytes.Buffer
		p, err := Packer{Git: &FakeGit{}}.Pack(context.Background(), dir, &buf)
		if err != nil {
			t.Fatalf("Pack: %v", err)
		}
		return buf.Bytes(), p
	}

	b1, p1 := pack(t, mk(t, 0o644, time.Unix(1e9, 0)))
	b2, p2 := pack(t, mk(t, 0o600, time.Unix(2e9, 0)))
	if !bytes.Equal(b1, b2) || p1.Digest != p2.Digest {
		t.Fatalf("same tree, different bytes: %s vs %s", p1.Digest, p2.Digest)
	}
	sum, err := Digest(bytes.NewReader(b1))
	if err != nil || sum != p1.Digest {
		t.Errorf("Digest = %s, %v; Pack said %s", sum, err, p1.Digest)
	}
	if p1.Files != 8 || p1.Bytes != int64(len(b1)) || p1.Subdir != "" || p1.Untracked != nil {
		t.Errorf("Packed = %+v", p1)
	}
	wantNames := []string{"a/", "a-b", "a/z", "default.nix", "empty/", "empty/.keep", "flake.nix",
		"hosts/", "hosts/alpha.nix", "hosts/beta.nix", "scripts/", "scripts/deploy.sh"}
	if got := tarNames(t, b1); !slices.Equal(got, wantNames) {
		t.Errorf("tar order:\n%q\nwant\n%q", got, wantNames)
	}

	tr := tar.NewReader(bytes.NewReader(b1))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: metadata not normalized: %+v", hdr.Name, hdr)
		}
		wantMode := map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777, tar.TypeReg: 0o644}[hdr.Typeflag]
		if hdr.Name == "scripts/deploy.sh" {
			wantMode = 0o755
		}
		if hdr.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", hdr.Name, hdr.Mode, wantMode)
		}
	}

	// Round trip: what Pack writes, Extract accepts unchanged.
	dest := filepath.Join(t.TempDir(), "x")
	if _, err := Extract(context.Background(), bytes.NewReader(b1), dest, Limits{}); err != nil {
		t.Fatalf("Extract(Pack()): %v", err)
	}
	var buf bytes.Buffer
	p3, err := Packer{Git: &FakeGit{}}.Pack(context.Background(), dest, &buf)
	if err != nil || p3.Digest != p1.Digest {
		t.Errorf("repack of extracted tree: %s, %v; want %s", p3.Digest, err, p1.Digest)
	}
}

func TestPackRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr error
	}{
		{
			name: "absolute symlink",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("/nix/store/abc-result", filepath.Join(dir, "result")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrSymlinkEscape,
		},
		{
			name: "escaping relative symlink",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("../../etc/passwd", filepath.Join(dir, "pw")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrSymlinkEscape,
		},
		{
			name: "fifo",
			setup: func(t *testing.T, dir string) {
				if err := mkfifo(filepath.Join(dir, "pipe")); err != nil {
					t.Skipf("cannot make a fifo here: %v", err)
				}
			},
			wantErr: ErrUnsupportedType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"flake.nix": "{}"})
			tt.setup(t, dir)
			_, err := Packer{Git: &FakeGit{}}.Pack(context.Background(), dir, io.Discard)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Pack error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPackFakeGitCalls(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"flake.nix": "{}", "sub/x": "x", "new": "n"})
	g := &FakeGit{Root: dir, Files: map[string][]string{
		"--cached":                    {"flake.nix", "sub/x", "gone"},
		"--others --exclude-standard": {"new"},
	}}
	var buf bytes.Buffer
	p, err := Packer{Git: g}.Pack(context.Background(), filepath.Join(dir, "sub"), &buf)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	wantCalls := []string{
		"rev-parse --show-toplevel " + filepath.Join(dir, "sub"),
		"ls-files -z --cached " + dir,
		"ls-files -z --others --exclude-standard " + dir,
	}
	if got := g.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("git calls:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantCalls, "\n"))
	}
	if p.Subdir != "sub" || !slices.Equal(p.Untracked, []string{"new"}) || p.Files != 2 {
		t.Errorf("Packed = %+v", p)
	}
	if got, want := tarNames(t, buf.Bytes()), []string{"flake.nix", "sub/", "sub/x"}; !slices.Equal(got, want) {
		t.Errorf("packed %q, want %q", got, want)
	}

	boom := errors.New("git exploded")
	if _, err := (Packer{Git: &FakeGit{Err: boom}}).Pack(context.Background(), dir, io.Discard); !errors.Is(err, boom) {
		t.Errorf("git failure not wrapped: %v", err)
	}
}

// requireGit skips when the git binary is missing and returns a function
// that runs git in a directory with a fixed identity.
func requireGit(t *testing.T) func(dir string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; install it to test git-aware packing")
	}
	return func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(),
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
			"GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestPackGit(t *testing.T) {
	git := requireGit(t)
	repo := t.TempDir()
	git(repo, "init", "-q")
	writeFiles(t, repo, map[string]string{
		".gitignore":          "*.secret\nresult\n",
		"README":              "readme",
		"nix/flake.nix":       "committed",
		"nix/hosts.json":      "{}",
		"nix/deleted.nix":     "to be deleted",
		"nix/lib/default.nix": "lib",
		"other/x":             "x",
	})
	if err := os.Symlink("lib/default.nix", filepath.Join(repo, "nix/link.nix")); err != nil {
		t.Fatal(err)
	}
	git(repo, "add", ".")
	git(repo, "commit", "-q", "-m", "init")
	writeFiles(t, repo, map[string]string{
		"nix/flake.nix":    "modified, not committed",
		"nix/staged.nix":   "added, not committed",
		"nix/untracked":    "not added",
		"nix/key.secret":   "ignored",
		"untracked-at-top": "not added",
	})
	git(repo, "add", "nix/staged.nix")
	if err := os.Remove(filepath.Join(repo, "nix/deleted.nix")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nix/store/x-result", filepath.Join(repo, "nix/result")); err != nil {
		t.Fatal(err) // ignored, so its absolute target is no problem
	}

	var buf bytes.Buffer
	p, err := Pack(context.Background(), filepath.Join(repo, "nix"), &buf)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	if p.Subdir != "nix" {
		t.Errorf("Subdir = %q, want nix", p.Subdir)
	}
	if want := []string{"nix/untracked", "untracked-at-top"}; !slices.Equal(p.Untracked, want) {
		t.Errorf("Untracked = %q, want %q", p.Untracked, want)
	}
	dest := filepath.Join(t.TempDir(), "src")
	if _, err := Extract(context.Background(), bytes.NewReader(buf.Bytes()), dest, Limits{}); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	want := []string{
		".gitignore -rw-r--r-- *.secret\nresult\n",
		"README -rw-r--r-- readme",
		"nix/ -rwxr-xr-x",
		"nix/flake.nix -rw-r--r-- modified, not committed",
		"nix/hosts.json -rw-r--r-- {}",
		"nix/lib/ -rwxr-xr-x",
		"nix/lib/default.nix -rw-r--r-- lib",
		"nix/link.nix -> lib/default.nix",
		"nix/staged.nix -rw-r--r-- added, not committed",
		"other/ -rwxr-xr-x",
		"other/x -rw-r--r-- x",
	}
	if got := listTree(t, dest); !slices.Equal(got, want) {
		t.Errorf("packed tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.Files != 8 {
		t.Errorf("Files = %d, want 8", p.Files)
	}

	// Packing from the root gives the same bytes and an empty Subdir.
	var buf2 bytes.Buffer
	p2, err := Pack(context.Background(), repo, &buf2)
	if err != nil || p2.Digest != p.Digest || p2.Subdir != "" {
		t.Errorf("Pack(root) = %+v, %v; want digest %s", p2, err, p.Digest)
	}
}

func TestExecGitNotRepo(t *testing.T) {
	requireGit(t)
	dir := t.TempDir()
	if _, err := (ExecGit{}).TopLevel(context.Background(), dir); !errors.Is(err, ErrNotRepo) {
		t.Errorf("TopLevel(plain dir) = %v, want ErrNotRepo", err)
	}
}

func TestExecGitMissingBinary(t *testing.T) {
	g := ExecGit{Path: filepath.Join(t.TempDir(), "no-such-git")}
	plain := t.TempDir()
	if _, err := g.TopLevel(context.Background(), plain); !errors.Is(err, ErrNotRepo) {
		t.Errorf("plain dir without git: %v, want ErrNotRepo", err)
	}
	repo := t.TempDir()
	if err := os.Mkdir(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := g.TopLevel(context.Background(), repo); err == nil || errors.Is(err, ErrNotRepo) {
		t.Errorf("repo without git binary: %v, want a hard error", err)
	}
}
