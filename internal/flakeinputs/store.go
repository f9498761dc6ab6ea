package flakeinputs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/internal/nix"
)

// StoreNix is what Store needs of nix (*nix.Nix is one).
type StoreNix interface {
	InvalidPaths(ctx context.Context, paths ...string) ([]string, error)
	Restore(ctx context.Context, dir string, r io.Reader) error
	AddPath(ctx context.Context, name, dir string) (string, error)
}

var _ StoreNix = (*nix.Nix)(nil)

// Store adds uploaded inputs to the agent's nix store.
type Store struct {
	Nix StoreNix
	// TempDir holds an upload while it arrives (the NAR and its restored
	// tree); required, created when missing.
	TempDir string
	// MaxBytes is the largest NAR accepted; required.
	MaxBytes int64
	// RootDir, if set, holds a garbage collector root per input added or
	// used (roots.go), the KeepRoots most recently used (default
	// DefaultKeepRoots).
	RootDir   string
	KeepRoots int
	Log       hclog.Logger
}

// Missing returns which of paths the nix store lacks; ErrBadInput for a
// path that is not a store path.
func (s Store) Missing(ctx context.Context, paths []string) ([]string, error) {
	for _, p := range paths {
		if err := CheckStorePath(p); err != nil {
			return nil, err
		}
	}
	return s.Nix.InvalidPaths(ctx, paths...)
}

// Add reads the NAR of in from r and adds it to the nix store. Nothing
// enters the store unless exactly in.NarSize bytes arrive (no more than
// MaxBytes) and they hash to in.NarHash; the store path nix gives it must
// be in.StorePath. It returns the bytes read.
func (s Store) Add(ctx context.Context, in Input, r io.Reader) (int64, error) {
	if err := in.Check(); err != nil {
		return 0, err
	}
	if in.NarSize > s.MaxBytes {
		return 0, fmt.Errorf("%w: %s (%s) is %d bytes, over the agent's limit of %d bytes (maxUploadBytes)", ErrTooLarge, in.Name, in.StorePath, in.NarSize, s.MaxBytes)
	}
	if err := os.MkdirAll(s.TempDir, 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(s.TempDir, "input-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	f, err := os.Create(filepath.Join(tmp, "nar"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, in.NarSize+1))
	if err != nil {
		return n, fmt.Errorf("%w: %s: after %d of %d bytes: %v", ErrTruncated, in.StorePath, n, in.NarSize, err)
	}
	if n != in.NarSize {
		return n, fmt.Errorf("%w: %s: received %d bytes, the signed NAR size is %d", ErrTruncated, in.StorePath, n, in.NarSize)
	}
	if got := "sha256-" + base64.StdEncoding.EncodeToString(h.Sum(nil)); got != in.NarHash {
		return n, fmt.Errorf("%w: %s: received bytes hash to %s, signed %s", ErrHashMismatch, in.StorePath, got, in.NarHash)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return n, err
	}
	tree := filepath.Join(tmp, "tree")
	if err := s.Nix.Restore(ctx, tree, f); err != nil {
		return n, err
	}
	got, err := s.Nix.AddPath(ctx, storeName(in.StorePath), tree)
	if err != nil {
		return n, err
	}
	if got != in.StorePath {
		return n, fmt.Errorf("%w: the NAR of %s gave %s", ErrPathMismatch, in.StorePath, got)
	}
	s.root(in.StorePath)
	if s.Log != nil {
		s.Log.Info("flake input added to the store", "input", in.Name, "path", in.StorePath, "bytes", n)
	}
	return n, nil
}
