package nix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pantheros/panther/internal/nixcache"
)

// StoreDir is the Nix store the fleet cache serves.
const StoreDir = "/nix/store"

// CacheStore is the local store as the fleet cache serves it
// (nixcache.Store): path-info and dump-path through this Nix.
type CacheStore struct{ N *Nix }

var _ nixcache.Store = CacheStore{}

// PathInfo implements nixcache.Store: the valid store path with that hash
// part, read with `nix path-info --json`.
func (s CacheStore) PathInfo(ctx context.Context, hashPart string) (nixcache.PathInfo, error) {
	if !nixcache.ValidHashPart(hashPart) {
		return nixcache.PathInfo{}, nixcache.ErrBadRequest
	}
	names, err := filepath.Glob(filepath.Join(StoreDir, hashPart+"-*"))
	if err != nil {
		return nixcache.PathInfo{}, err
	}
	for _, p := range names {
		if strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, ".chroot") {
			continue
		}
		pi, err := s.N.PathInfo(ctx, p)
		if errors.Is(err, nixcache.ErrNotFound) {
			continue
		}
		return pi, err
	}
	return nixcache.PathInfo{}, nixcache.ErrNotFound
}

// Dump implements nixcache.Store with `nix store dump-path`.
func (s CacheStore) Dump(ctx context.Context, storePath string, w io.Writer) error {
	return s.N.runTo(ctx, []string{s.N.nix, "store", "dump-path", storePath}, nil, w)
}

// PathInfo returns what `nix path-info --json` says of a store path;
// nixcache.ErrNotFound if it is not valid.
func (n *Nix) PathInfo(ctx context.Context, storePath string) (nixcache.PathInfo, error) {
	if _, err := os.Lstat(storePath); err != nil {
		return nixcache.PathInfo{}, nixcache.ErrNotFound
	}
	out, err := n.run(ctx, []string{n.nix, "path-info", "--json", storePath}, nil)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && strings.Contains(e.StderrTail, "is not valid") {
			return nixcache.PathInfo{}, nixcache.ErrNotFound
		}
		return nixcache.PathInfo{}, fmt.Errorf("path-info %s: %w", storePath, err)
	}
	return ParsePathInfo(out, storePath)
}

// ParsePathInfo reads the entry for storePath from `nix path-info --json`
// (nix 2.8 prints a list; newer versions an object keyed by path). An
// entry without narHash ("valid": false) is ErrNotFound.
func ParsePathInfo(out []byte, storePath string) (nixcache.PathInfo, error) {
	type entry struct {
		Path       string   `json:"path"`
		NarHash    string   `json:"narHash"`
		NarSize    int64    `json:"narSize"`
		References []string `json:"references"`
		Deriver    string   `json:"deriver"`
		CA         string   `json:"ca"`
	}
	var list []entry
	if err := json.Unmarshal(out, &list); err != nil {
		var obj map[string]*entry
		if err2 := json.Unmarshal(out, &obj); err2 != nil {
			return nixcache.PathInfo{}, fmt.Errorf("%w: path-info json: %v", ErrParse, err)
		}
		for p, e := range obj {
			if e != nil {
				e.Path = p
				list = append(list, *e)
			}
		}
	}
	for _, e := range list {
		if e.Path != storePath {
			continue
		}
		if e.NarHash == "" {
			return nixcache.PathInfo{}, nixcache.ErrNotFound
		}
		return nixcache.PathInfo{Path: e.Path, NarHash: e.NarHash, NarSize: e.NarSize, References: e.References, Deriver: e.Deriver, CA: e.CA}, nil
	}
	return nixcache.PathInfo{}, nixcache.ErrNotFound
}

// OutPath evaluates an installable's out path without building it:
// `nix eval --raw <installable>.outPath`.
func (n *Nix) OutPath(ctx context.Context, installable string) (string, error) {
	out, err := n.run(ctx, []string{n.nix, "eval", "--raw", installable + ".outPath"}, nil)
	if err != nil {
		return "", fmt.Errorf("out path of %s: %w", installable, err)
	}
	p := strings.TrimSpace(string(out))
	if !strings.HasPrefix(p, StoreDir+"/") {
		return "", fmt.Errorf("%w: out path %q", ErrParse, p)
	}
	return p, nil
}

// CopyFrom substitutes storePath and its closure from the binary cache at
// url with `nix copy --from`, checking signatures against trustedKeys on
// top of nix's own trusted-public-keys: a path signed by another key, or a
// NAR whose hash differs from its signed narinfo, never enters the store.
func (n *Nix) CopyFrom(ctx context.Context, url, storePath string, trustedKeys []string, onLine func(string)) error {
	argv := []string{n.nix, "copy", "--from", url,
		"--option", "narinfo-cache-negative-ttl", "0",
		"--option", "narinfo-cache-positive-ttl", "0"}
	if len(trustedKeys) > 0 {
		argv = append(argv, "--option", "extra-trusted-public-keys", strings.Join(trustedKeys, " "))
	}
	argv = append(argv, storePath)
	if _, err := n.run(ctx, argv, onLine); err != nil {
		return fmt.Errorf("substituting %s: %w", storePath, err)
	}
	return nil
}

// CopyTo copies storePath's closure to the store at uri (`nix copy --to`),
// e.g. an S3, Attic or ssh store the fleet already uses.
func (n *Nix) CopyTo(ctx context.Context, uri, storePath string, onLine func(string)) error {
	if _, err := n.run(ctx, []string{n.nix, "copy", "--to", uri, storePath}, onLine); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", storePath, uri, err)
	}
	return nil
}
