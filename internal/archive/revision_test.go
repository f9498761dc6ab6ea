package archive

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExecGitRevision: HEAD and the dirty flag of tracked files only; no
// revision outside a checkout.
func TestExecGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	ctx := t.Context()
	if rev, dirty := (ExecGit{}).Revision(ctx, t.TempDir()); rev != "" || dirty {
		t.Errorf("outside a checkout: %q, %v", rev, dirty)
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		cmd.Env = gitEnv(os.Environ())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	if rev, _ := (ExecGit{}).Revision(ctx, dir); rev != "" {
		t.Errorf("no commit yet: %q", rev)
	}
	write("flake.nix", "{}\n")
	git("add", "flake.nix")
	git("commit", "-q", "-m", "one")
	rev, dirty := (ExecGit{}).Revision(ctx, dir)
	if len(rev) != 40 || dirty {
		t.Errorf("clean checkout: %q, dirty %v", rev, dirty)
	}
	write("untracked", "x")
	if _, dirty := (ExecGit{}).Revision(ctx, dir); dirty {
		t.Error("an untracked file made the checkout dirty")
	}
	write("flake.nix", "{ }\n")
	if r, dirty := (ExecGit{}).Revision(ctx, dir); r != rev || !dirty {
		t.Errorf("tracked change: %q, dirty %v", r, dirty)
	}
}
