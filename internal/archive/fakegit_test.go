package archive

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// FakeGit is a recording Git for tests: it answers from its fields and
// records every call as one line of text.
type FakeGit struct {
	// Root is returned by TopLevel. Default (""): TopLevel reports ErrNotRepo.
	Root string
	// Files maps the space-joined LsFiles arguments (e.g. "--cached") to
	// the names to return. Default: no names.
	Files map[string][]string
	// Err, when set, is returned by every call.
	Err error

	mu    sync.Mutex
	calls []string
}

var _ Git = (*FakeGit)(nil)

// TopLevel implements Git.
func (f *FakeGit) TopLevel(_ context.Context, dir string) (string, error) {
	f.record("rev-parse --show-toplevel " + dir)
	if f.Err != nil {
		return "", f.Err
	}
	if f.Root == "" {
		return "", fmt.Errorf("%s: %w", dir, ErrNotRepo)
	}
	return f.Root, nil
}

// LsFiles implements Git.
func (f *FakeGit) LsFiles(_ context.Context, root string, args ...string) ([]string, error) {
	key := strings.Join(args, " ")
	f.record("ls-files -z " + key + " " + root)
	if f.Err != nil {
		return nil, f.Err
	}
	return append([]string(nil), f.Files[key]...), nil
}

// Calls returns the calls made so far, one line each.
func (f *FakeGit) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *FakeGit) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}
