package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Store keeps extracted archives by digest: the tree of "sha256:<hex>" lives
// at <Dir>/<hex>. A tree appears there only once it is complete and its
// digest verified. Several goroutines may call Put for different digests;
// racing Puts of the same digest are harmless (one tree wins).
type Store struct {
	// Dir holds the trees. Required; created by Put when missing.
	Dir string
}

// maxTrailing bounds what may follow the end-of-archive marker (writers pad
// to a record size; GNU tar uses 10 KiB records).
const maxTrailing = 1 << 20

// Path returns where the tree of digest lives (whether or not it exists).
func (s Store) Path(digest string) (string, error) {
	hexSum, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, hexSum), nil
}

// Has reports whether the tree of digest is present; false for a malformed
// digest.
func (s Store) Has(digest string) bool {
	p, err := s.Path(digest)
	if err != nil {
		return false
	}
	info, err := os.Lstat(p)
	return err == nil && info.IsDir()
}

// Put extracts the tar stream r (see Extract, with lim) and stores it under
// digest, returning its path. It hashes every byte it reads and refuses with
// ErrDigestMismatch unless they hash to digest. When the tree is already
// present Put reads nothing and only marks it as recently used for Prune.
func (s Store) Put(ctx context.Context, digest string, r io.Reader, lim Limits) (string, error) {
	final, err := s.Path(digest)
	if err != nil {
		return "", fmt.Errorf("store put: %w", err)
	}
	if s.Has(digest) {
		touch(final)
		return final, nil
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	staging, err := os.MkdirTemp(s.Dir, stagingPrefix)
	if err != nil {
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	defer os.RemoveAll(staging)

	h := sha256.New()
	tree := filepath.Join(staging, "tree")
	if _, err := Extract(ctx, io.TeeReader(r, h), tree, lim); err != nil {
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	// Hash what follows the end marker too: the digest covers the stream.
	n, err := io.Copy(h, io.LimitReader(r, maxTrailing+1))
	if err != nil {
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	if n > maxTrailing {
		return "", fmt.Errorf("store put %s: more than %d bytes after the archive: %w", digest, maxTrailing, ErrTooLarge)
	}
	if got := formatDigest(h); got != digest {
		return "", fmt.Errorf("store put %s: received %s: %w", digest, got, ErrDigestMismatch)
	}
	if err := seal(tree, final+treeSuffix); err != nil {
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	if err := os.Rename(tree, final); err != nil {
		if s.Has(digest) {
			return final, nil // a concurrent Put of the same digest won
		}
		return "", fmt.Errorf("store put %s: %w", digest, err)
	}
	touch(final)
	return final, nil
}

// Prune removes all but the keep most recently stored (or re-Put) trees,
// oldest first, and returns the digests it removed. Trees whose digest is
// in protect are never removed and not counted. Negative keep counts as
// zero.
func (s Store) Prune(keep int, protect ...string) ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store prune: %w", err)
	}
	type tree struct {
		digest string
		mtime  time.Time
	}
	var trees []tree
	for _, e := range entries {
		d := digestPrefix + e.Name()
		if !e.IsDir() {
			continue
		}
		if _, err := ParseDigest(d); err != nil {
			continue // staging directories and anything else not ours
		}
		if slices.Contains(protect, d) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		trees = append(trees, tree{digest: d, mtime: info.ModTime()})
	}
	sort.Slice(trees, func(i, j int) bool {
		if !trees[i].mtime.Equal(trees[j].mtime) {
			return trees[i].mtime.Before(trees[j].mtime)
		}
		return trees[i].digest < trees[j].digest
	})
	keep = max(keep, 0)
	var removed []string
	for len(trees) > keep {
		t := trees[0]
		trees = trees[1:]
		if err := s.Remove(t.digest); err != nil {
			return removed, fmt.Errorf("store prune %s: %w", t.digest, err)
		}
		removed = append(removed, t.digest)
	}
	return removed, nil
}

// stagingPrefix starts the directories Put extracts into.
const stagingPrefix = ".put-"

// CleanStaging removes the staging directories a Put left behind when the
// process died during an upload, and returns how many it removed. Call it
// only when no Put is running (at start).
func (s Store) CleanStaging() (int, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store clean: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.Dir, e.Name())); err != nil {
			return n, fmt.Errorf("store clean: %w", err)
		}
		n++
	}
	return n, nil
}

// touch marks a tree as used now; Prune orders trees by this time.
func touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now)
}
