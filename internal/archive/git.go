package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotRepo is returned by Git.TopLevel when dir is not inside a git work
// tree; Pack then packs the plain directory.
var ErrNotRepo = errors.New("not inside a git work tree")

// Git is what Pack needs from git. ExecGit runs the real binary; FakeGit
// records calls and answers from a script.
type Git interface {
	// TopLevel returns the absolute root of the work tree that contains
	// dir, or an error wrapping ErrNotRepo.
	TopLevel(ctx context.Context, dir string) (string, error)
	// LsFiles runs `git ls-files -z <args>` in root and returns the names
	// it lists, relative to root.
	LsFiles(ctx context.Context, root string, args ...string) ([]string, error)
}

// ExecGit runs git with os/exec.
type ExecGit struct {
	// Path is the git binary. Default (""): "git" looked up in PATH.
	Path string
}

var _ Git = ExecGit{}

// TopLevel implements Git with `git -C dir rev-parse --show-toplevel`. When
// git is not installed it reports ErrNotRepo only if no ".git" exists in dir
// or above it, so a missing binary never turns a repository into a plain
// directory (which would pack untracked files).
func (g ExecGit) TopLevel(ctx context.Context, dir string) (string, error) {
	out, err := g.run(ctx, dir, "rev-parse", "--show-toplevel")
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		if hasDotGit(dir) {
			return "", fmt.Errorf("%s is in a git repository but git is not installed: %w", dir, err)
		}
		return "", fmt.Errorf("%s: %w", dir, ErrNotRepo)
	}
	var ee *gitError
	if errors.As(err, &ee) && strings.Contains(ee.stderr, "not a git repository") {
		return "", fmt.Errorf("%s: %w", dir, ErrNotRepo)
	}
	if err != nil {
		return "", err
	}
	top := strings.TrimRight(string(out), "\n")
	if top == "" {
		// Inside .git itself rev-parse prints nothing.
		return "", fmt.Errorf("%s: inside a .git directory: %w", dir, ErrNotRepo)
	}
	return top, nil
}

// Revision returns HEAD of the work tree that contains dir and whether its
// tracked files have uncommitted changes; "" when dir is in no git
// checkout (or HEAD has no commit yet).
func (g ExecGit) Revision(ctx context.Context, dir string) (rev string, dirty bool) {
	out, err := g.run(ctx, dir, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return "", false
	}
	rev = strings.TrimSpace(string(out))
	st, err := g.run(ctx, dir, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return rev, true
	}
	return rev, strings.TrimSpace(string(st)) != ""
}

// LsFiles implements Git.
func (g ExecGit) LsFiles(ctx context.Context, root string, args ...string) ([]string, error) {
	out, err := g.run(ctx, root, append([]string{"ls-files", "-z"}, args...)...)
	if err != nil {
		return nil, err
	}
	return splitNUL(out), nil
}

func (g ExecGit) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	bin := g.Path
	if bin == "" {
		bin = "git"
	}
	argv := append([]string{"-C", dir}, args...)
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = gitEnv(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &gitError{args: argv, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.Bytes(), nil
}

// gitEnv drops variables that would point git at another repository than
// the one under -C (they are set inside git hooks, for instance).
func gitEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR":
			continue
		}
		out = append(out, kv)
	}
	return out
}

type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := "git " + strings.Join(e.args, " ") + ": " + e.err.Error()
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

func hasDotGit(dir string) bool {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
		up := filepath.Dir(d)
		if up == d {
			return false
		}
		d = up
	}
}

func splitNUL(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(b, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}
