package nixtest_test

import (
	"slices"
	"testing"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
)

// The tool variants differ in a package of their closure: diff-closures
// names it with both versions and the size change, path-info sizes both.
func TestToolVariantsDiffClosures(t *testing.T) {
	n := nixtest.Nix(t)
	tops := buildAll(t, n, nixtest.ToolV1Variant, nixtest.ToolV2Variant)
	v1, v2 := tops[nixtest.ToolV1Variant], tops[nixtest.ToolV2Variant]
	changes, err := n.DiffClosures(t.Context(), v1, v2)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(changes, func(c nix.ClosureChange) bool { return c.Name == nixtest.ToolPackage })
	if i < 0 {
		t.Fatalf("diff-closures lacks %s: %v", nixtest.ToolPackage, changes)
	}
	if c := changes[i]; !slices.Equal(c.Old, []string{nixtest.ToolV1}) || !slices.Equal(c.New, []string{nixtest.ToolV2}) || c.SizeDelta != 32<<10 {
		t.Errorf("change = %v, want %s %s → %s, +32 KiB", c, nixtest.ToolPackage, nixtest.ToolV1, nixtest.ToolV2)
	}
	sizes, err := n.ClosureSizes(t.Context(), v1, v2)
	if err != nil {
		t.Fatal(err)
	}
	if d := sizes[v2] - sizes[v1]; sizes[v1] <= 16<<10 || d < 32<<10 {
		t.Errorf("closure sizes %d → %d, want the new one ≥ 32 KiB bigger", sizes[v1], sizes[v2])
	}
}
