package nixcache

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
)

// PathInfo is what the cache needs to know of a valid store path (what
// `nix path-info --json` prints).
type PathInfo struct {
	Path       string   // /nix/store/<hash>-<name>
	NarHash    string   // "sha256-<base64>" or "sha256:<base32>"
	NarSize    int64    // bytes of the NAR
	References []string // full store paths
	Deriver    string   // full .drv path, or ""
	CA         string   // content address, or ""
}

// Store is the local Nix store the cache serves (internal/nix implements it).
type Store interface {
	// PathInfo returns the valid store path whose hash part is hashPart,
	// or ErrNotFound.
	PathInfo(ctx context.Context, hashPart string) (PathInfo, error)
	// Dump writes the NAR serialisation of a valid store path to w.
	Dump(ctx context.Context, storePath string, w io.Writer) error
}

// HashPart is the hash part of a store path ("" if it is none).
func HashPart(storePath string) string {
	base := path.Base(storePath)
	h, _, ok := strings.Cut(base, "-")
	if !ok || !ValidHashPart(h) {
		return ""
	}
	return h
}

// NarInfo renders the .narinfo file of pi, signed with key (unsigned if key
// is nil), whose NAR is served uncompressed at nar/<hash part>.nar.
func NarInfo(pi PathInfo, key *SecretKey) ([]byte, error) {
	hash := HashPart(pi.Path)
	if hash == "" {
		return nil, fmt.Errorf("%w: %q is not a store path", ErrBadRequest, pi.Path)
	}
	narHash, err := NarHashBase32(pi.NarHash)
	if err != nil {
		return nil, err
	}
	full := slices.Sorted(slices.Values(pi.References)) // nix signs them in store path order
	refs := make([]string, 0, len(full))
	for _, r := range full {
		refs = append(refs, path.Base(r))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "StorePath: %s\n", pi.Path)
	fmt.Fprintf(&b, "URL: nar/%s.nar\n", hash)
	b.WriteString("Compression: none\n")
	fmt.Fprintf(&b, "NarHash: %s\n", narHash)
	fmt.Fprintf(&b, "NarSize: %s\n", strconv.FormatInt(pi.NarSize, 10))
	fmt.Fprintf(&b, "References: %s\n", strings.Join(refs, " "))
	if pi.Deriver != "" {
		fmt.Fprintf(&b, "Deriver: %s\n", path.Base(pi.Deriver))
	}
	if key != nil {
		fmt.Fprintf(&b, "Sig: %s\n", key.Sign(Fingerprint(pi.Path, narHash, pi.NarSize, full)))
	}
	if pi.CA != "" {
		fmt.Fprintf(&b, "CA: %s\n", pi.CA)
	}
	return []byte(b.String()), nil
}
