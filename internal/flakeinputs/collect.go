package flakeinputs

import (
	"context"
	"fmt"
	"regexp"
	"sort"

	"github.com/pantheros/panther/internal/nix"
)

// Collect lets the local nix fetch every locked input of the flake
// flakeRef into the local store (`nix flake archive`, which never changes
// the lock) and returns them, each store path once, sorted by name.
func Collect(ctx context.Context, n *nix.Nix, flakeRef string) ([]Input, error) {
	root, err := n.FlakeArchive(ctx, flakeRef)
	if err != nil {
		return nil, err
	}
	byPath := map[string]string{}
	var walk func(prefix string, node nix.ArchiveNode)
	walk = func(prefix string, node nix.ArchiveNode) {
		names := make([]string, 0, len(node.Inputs))
		for name := range node.Inputs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			child := node.Inputs[name]
			full := prefix + name
			if old, ok := byPath[child.Path]; !ok || len(full) < len(old) {
				byPath[child.Path] = full
			}
			walk(full+"/", child)
		}
	}
	walk("", root)
	if len(byPath) == 0 {
		return nil, nil
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	infos, err := n.PathInfos(ctx, paths...)
	if err != nil {
		return nil, err
	}
	var out []Input
	for _, info := range infos {
		in := Input{Name: byPath[info.Path], StorePath: info.Path, NarHash: info.NarHash, NarSize: info.NarSize}
		if err := in.Check(); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// storePathRE is a store path under /nix/store: 32 characters of nix's
// base32 and a name of the characters nix allows.
var storePathRE = regexp.MustCompile(`^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211}$`)

// narHashRE is an SRI sha256 hash as nix prints NAR hashes.
var narHashRE = regexp.MustCompile(`^sha256-[A-Za-z0-9+/]{43}=$`)

// CheckStorePath returns ErrBadInput unless p is a store path.
func CheckStorePath(p string) error {
	if !storePathRE.MatchString(p) {
		return fmt.Errorf("%w: %q is not a store path", ErrBadInput, p)
	}
	return nil
}

// Check returns ErrBadInput unless the input's store path and NAR hash are
// well formed and its size positive.
func (in Input) Check() error {
	if err := CheckStorePath(in.StorePath); err != nil {
		return err
	}
	if !narHashRE.MatchString(in.NarHash) {
		return fmt.Errorf("%w: %s: NAR hash %q is not sha256 in SRI form", ErrBadInput, in.StorePath, in.NarHash)
	}
	if in.NarSize <= 0 {
		return fmt.Errorf("%w: %s: NAR size %d", ErrBadInput, in.StorePath, in.NarSize)
	}
	return nil
}

// storeName is the name part of a store path (after "<hash>-").
func storeName(p string) string { return p[len("/nix/store/")+33:] }
