package nix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// ArchiveNode is one flake of `nix flake archive --json`: its store path
// and its inputs by name.
type ArchiveNode struct {
	Path   string                 `json:"path"`
	Inputs map[string]ArchiveNode `json:"inputs"`
}

// FlakeArchive runs `nix flake archive --json <flakeRef>`: nix fetches
// every locked input of the flake into the local store (where they are
// missing) and prints the tree of store paths.
func (n *Nix) FlakeArchive(ctx context.Context, flakeRef string) (ArchiveNode, error) {
	var root ArchiveNode
	out, err := n.run(ctx, []string{n.nix, "flake", "archive", "--json", flakeRef}, nil)
	if err != nil {
		return root, fmt.Errorf("archive %s: %w", flakeRef, err)
	}
	if err := json.Unmarshal(out, &root); err != nil {
		return root, fmt.Errorf("%w: flake archive json: %v", ErrParse, err)
	}
	return root, nil
}

// PathInfo is what `nix path-info --json` says about one valid store path.
type PathInfo struct {
	Path    string `json:"path"`
	NarHash string `json:"narHash"` // SRI: "sha256-<base64>"
	NarSize int64  `json:"narSize"`
}

// PathInfos runs `nix path-info --json <paths>`.
func (n *Nix) PathInfos(ctx context.Context, paths ...string) ([]PathInfo, error) {
	var infos []PathInfo
	out, err := n.run(ctx, append([]string{n.nix, "path-info", "--json"}, paths...), nil)
	if err != nil {
		return nil, fmt.Errorf("path-info: %w", err)
	}
	if err := json.Unmarshal(out, &infos); err != nil {
		return nil, fmt.Errorf("%w: path-info json: %v", ErrParse, err)
	}
	return infos, nil
}

// Dump writes the NAR serialisation of a store path to w
// (`nix-store --dump`): its sha256 is the path's NAR hash.
func (n *Nix) Dump(ctx context.Context, path string, w io.Writer) error {
	if err := n.runIO(ctx, []string{n.nixStore, "--dump", path}, nil, w, nil); err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	return nil
}

// Restore unpacks the NAR read from r into dir, which must not exist
// (`nix-store --restore`).
func (n *Nix) Restore(ctx context.Context, dir string, r io.Reader) error {
	if err := n.runIO(ctx, []string{n.nixStore, "--restore", dir}, r, io.Discard, nil); err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	return nil
}

// AddPath adds the tree at dir to the store under name, as a fixed-output,
// recursively hashed path (`nix store add-path --name <name>`): the same
// store path nix gives a fetched flake input whose NAR hash it has, and
// returns that path.
func (n *Nix) AddPath(ctx context.Context, name, dir string) (string, error) {
	out, err := n.run(ctx, []string{n.nix, "store", "add-path", "--name", name, dir}, nil)
	if err != nil {
		return "", fmt.Errorf("add %s to the store: %w", dir, err)
	}
	p := strings.TrimSpace(string(out))
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: add-path printed %q", ErrParse, p)
	}
	return p, nil
}

// InvalidPaths returns which of paths are not valid in the store
// (`nix-store --check-validity --print-invalid`).
func (n *Nix) InvalidPaths(ctx context.Context, paths ...string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	out, err := n.run(ctx, append([]string{n.nixStore, "--check-validity", "--print-invalid"}, paths...), nil)
	if err != nil {
		return nil, fmt.Errorf("check validity: %w", err)
	}
	var invalid []string
	for _, l := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			invalid = append(invalid, l)
		}
	}
	return invalid, nil
}

// EvalExprJSON evaluates a Nix expression impurely (`nix eval --json
// --impure --expr`) into v: for reading a flake.nix as the plain
// expression it is, without locking or fetching anything.
func (n *Nix) EvalExprJSON(ctx context.Context, v any, expr string) error {
	out, err := n.run(ctx, []string{n.nix, "eval", "--json", "--impure", "--expr", expr}, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%w: eval json: %v", ErrParse, err)
	}
	return nil
}

// NixString quotes s as a Nix string literal.
func NixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
