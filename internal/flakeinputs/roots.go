package flakeinputs

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// DefaultKeepRoots is how many inputs Store keeps rooted when KeepRoots is 0.
const DefaultKeepRoots = 32

// root makes path a garbage collector root (<RootDir>/<store name>) marked
// as used now, then keeps only the KeepRoots most recently used: a
// nix.gc.automatic run between two deploys does not delete an input the
// next deploy needs (which would then be uploaded again).
func (s Store) root(path string) {
	if s.RootDir == "" {
		return
	}
	if err := os.MkdirAll(s.RootDir, 0o755); err != nil {
		s.warn("creating the input root directory", err)
		return
	}
	link := filepath.Join(s.RootDir, filepath.Base(path))
	if cur, err := os.Readlink(link); err != nil || cur != path {
		tmp := link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(path, tmp); err != nil {
			s.warn("rooting an input", err)
			return
		}
		if err := os.Rename(tmp, link); err != nil {
			s.warn("rooting an input", err)
			return
		}
	}
	// The link's own times (os.Chtimes would follow it into the store).
	lchtimes(link, time.Now())
	s.pruneRoots()
}

// Use marks the roots of paths (inputs a deploy is about to use) as used
// now, rooting those that are not yet.
func (s Store) Use(paths []string) {
	for _, p := range paths {
		if CheckStorePath(p) == nil {
			s.root(p)
		}
	}
}

func (s Store) pruneRoots() {
	keep := s.KeepRoots
	if keep <= 0 {
		keep = DefaultKeepRoots
	}
	entries, err := os.ReadDir(s.RootDir)
	if err != nil {
		return
	}
	type root struct {
		name string
		t    time.Time
	}
	var roots []root
	for _, e := range entries {
		info, err := os.Lstat(filepath.Join(s.RootDir, e.Name()))
		if err != nil || info.Mode()&os.ModeSymlink == 0 {
			continue
		}
		roots = append(roots, root{e.Name(), info.ModTime()})
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].t.After(roots[j].t) })
	for _, r := range roots[min(keep, len(roots)):] {
		os.Remove(filepath.Join(s.RootDir, r.name))
	}
}

func (s Store) warn(what string, err error) {
	if s.Log != nil {
		s.Log.Warn(what, "dir", s.RootDir, "error", err)
	}
}
