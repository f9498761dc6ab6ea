package nix

import (
	"context"
	"encoding/json"
	"fmt"
)

// ClosureSizes runs `nix path-info --closure-size --json` on paths and
// returns each path's closure size in bytes (the path and everything it
// references, recursively). Empty paths are skipped; with none left it
// returns an empty map without running nix.
func (n *Nix) ClosureSizes(ctx context.Context, paths ...string) (map[string]int64, error) {
	argv := []string{n.nix, "path-info", "--closure-size", "--json"}
	for _, p := range paths {
		if p != "" {
			argv = append(argv, p)
		}
	}
	if len(argv) == 4 {
		return map[string]int64{}, nil
	}
	out, err := n.run(ctx, argv, nil)
	if err != nil {
		return nil, fmt.Errorf("closure size: %w", err)
	}
	sizes, err := ParseClosureSizes(out)
	if err != nil {
		return nil, fmt.Errorf("closure size: %w", err)
	}
	return sizes, nil
}

// ParseClosureSizes reads the JSON of `nix path-info --closure-size --json`
// (nix 2.8 to 2.18 print a list of objects; later versions an object keyed
// by path): path → closureSize. An entry without a closure size (a path
// that is not valid) is left out.
func ParseClosureSizes(out []byte) (map[string]int64, error) {
	type info struct {
		Path        string `json:"path"`
		ClosureSize *int64 `json:"closureSize"`
	}
	sizes := map[string]int64{}
	var list []info
	if err := json.Unmarshal(out, &list); err == nil {
		for _, i := range list {
			if i.Path != "" && i.ClosureSize != nil {
				sizes[i.Path] = *i.ClosureSize
			}
		}
		return sizes, nil
	}
	var byPath map[string]*info
	if err := json.Unmarshal(out, &byPath); err != nil {
		return nil, fmt.Errorf("%w: path-info json: %v", ErrParse, err)
	}
	for p, i := range byPath {
		if i != nil && i.ClosureSize != nil {
			sizes[p] = *i.ClosureSize
		}
	}
	return sizes, nil
}
