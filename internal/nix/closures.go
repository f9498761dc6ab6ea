package nix

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ClosureChange is one line of `nix store diff-closures`: a package whose
// versions or size differ between two closures.
type ClosureChange struct {
	Name string
	// Old and New are the versions before and after; empty when the package
	// is absent on that side ("∅"); a version "" is printed as "ε".
	Old, New []string
	// SizeDelta is the change in bytes, as printed (KiB, one decimal);
	// 0 when nix did not print it (it omits changes under 8 KiB).
	SizeDelta int64
}

// String renders c as nix prints it.
func (c ClosureChange) String() string {
	var items []string
	if len(c.Old) > 0 || len(c.New) > 0 {
		items = append(items, showVersions(c.Old)+" → "+showVersions(c.New))
	}
	if c.SizeDelta != 0 || len(items) == 0 {
		items = append(items, fmt.Sprintf("%+.1f KiB", float64(c.SizeDelta)/1024))
	}
	return c.Name + ": " + strings.Join(items, ", ")
}

func showVersions(vs []string) string {
	if len(vs) == 0 {
		return "∅"
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		if v == "" {
			v = "ε"
		}
		out[i] = v
	}
	return strings.Join(out, ", ")
}

// DiffClosures runs `nix store diff-closures oldPath newPath`. With
// oldPath == "" (a first deploy) there is nothing to compare: nil, nil.
func (n *Nix) DiffClosures(ctx context.Context, oldPath, newPath string) ([]ClosureChange, error) {
	if oldPath == "" {
		return nil, nil
	}
	out, err := n.run(ctx, []string{n.nix, "store", "diff-closures", oldPath, newPath}, nil)
	if err != nil {
		return nil, fmt.Errorf("diff closures: %w", err)
	}
	changes, err := ParseDiffClosures(string(out))
	if err != nil {
		return nil, fmt.Errorf("diff closures: %w", err)
	}
	return changes, nil
}

// sizeRE matches the size item that ends a diff-closures line.
var sizeRE = regexp.MustCompile(`(?:^|, )([+-][0-9]+(?:\.[0-9]+)?) KiB$`)

// ParseDiffClosures parses the output of `nix store diff-closures`, e.g.
//
//	firefox: 120.0 → 121.0, +1234.5 KiB
//	zlib: ∅ → 1.3
//	glibc: +16.0 KiB
//
// ANSI color codes and indentation are ignored; blank lines are skipped.
// A line of another shape is an ErrParse.
func ParseDiffClosures(out string) ([]ClosureChange, error) {
	var changes []ClosureChange
	for i, raw := range strings.Split(out, "\n") {
		line := strings.TrimSpace(StripANSI(raw))
		if line == "" {
			continue
		}
		c, err := parseClosureLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: diff-closures line %d %q: %v", ErrParse, i+1, line, err)
		}
		changes = append(changes, c)
	}
	return changes, nil
}

func parseClosureLine(line string) (ClosureChange, error) {
	name, rest, ok := strings.Cut(line, ": ")
	if !ok || name == "" {
		return ClosureChange{}, fmt.Errorf("no name")
	}
	c := ClosureChange{Name: name}
	sized := false
	if m := sizeRE.FindStringSubmatchIndex(rest); m != nil {
		kib, err := strconv.ParseFloat(rest[m[2]:m[3]], 64)
		if err != nil || math.IsInf(kib, 0) || math.Abs(kib) > 1<<40 {
			return ClosureChange{}, fmt.Errorf("bad size")
		}
		c.SizeDelta = int64(math.Round(kib * 1024))
		rest = rest[:m[0]]
		sized = true
	}
	if rest == "" {
		if !sized {
			return ClosureChange{}, fmt.Errorf("neither versions nor size")
		}
		return c, nil
	}
	oldV, newV, ok := strings.Cut(rest, " → ")
	if !ok {
		return ClosureChange{}, fmt.Errorf("no version arrow")
	}
	var err error
	if c.Old, err = parseVersions(oldV); err != nil {
		return ClosureChange{}, err
	}
	if c.New, err = parseVersions(newV); err != nil {
		return ClosureChange{}, err
	}
	if len(c.Old) == 0 && len(c.New) == 0 {
		return ClosureChange{}, fmt.Errorf("absent on both sides")
	}
	return c, nil
}

func parseVersions(s string) ([]string, error) {
	if s == "∅" {
		return nil, nil
	}
	if s == "" {
		return nil, fmt.Errorf("empty version list")
	}
	vs := strings.Split(s, ", ")
	for i, v := range vs {
		switch {
		case v == "ε":
			vs[i] = ""
		// A version is never blank nor padded: the line is trimmed, so
		// such a version would not read back as itself.
		case strings.TrimSpace(v) != v || v == "" || v == "∅" || strings.Contains(v, " → ") || sizeRE.MatchString(v):
			return nil, fmt.Errorf("bad version %q", v)
		}
	}
	return vs, nil
}
