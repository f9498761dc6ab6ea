package preflight

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// ExecGit is the real Git: it runs the git binary.
type ExecGit struct {
	// Git is the git binary. Default (""): "git" from PATH.
	Git string
}

var _ Git = ExecGit{}

// Changes implements Git with `git status --porcelain --untracked-files=all`
// limited to dir (the flake may be a subdirectory of the repository).
func (g ExecGit) Changes(ctx context.Context, dir string) ([]string, error) {
	bin := g.Git
	if bin == "" {
		bin = "git"
	}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-C", dir}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}
	inside, err := run("rev-parse", "--is-inside-work-tree")
	if err != nil || strings.TrimSpace(inside) != "true" {
		if _, lookErr := exec.LookPath(bin); lookErr != nil {
			return nil, fmt.Errorf("git: %w", lookErr)
		}
		return nil, ErrNotGit
	}
	out, err := run("status", "--porcelain", "--untracked-files=all", "--", ".")
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			changes = append(changes, l)
		}
	}
	return changes, nil
}
