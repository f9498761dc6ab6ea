package nix_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
)

// One evaluation yields the hosts, the warnings and the derivation; the
// derivation then builds without evaluating the flake again (the traced
// variant prints a line on each evaluation).
func TestRealEvaluateOnce(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, map[string]string{"alpha": nixtest.Traced, "beta": nixtest.Warnings, "delta": nixtest.EvalError})
	ref := nixtest.Ref(dir)
	ctx := t.Context()

	var evalLines []string
	ev, err := n.Evaluate(ctx, ref, "alpha", func(l string) { evalLines = append(evalLines, l) })
	if err != nil {
		t.Fatalf("Evaluate(alpha): %v", err)
	}
	if !ev.Found || !slices.Equal(ev.Hosts, []string{"alpha", "beta", "delta"}) || len(ev.Warnings) != 0 {
		t.Errorf("Evaluate(alpha) = %+v", ev)
	}
	if !strings.HasSuffix(ev.DrvPath, ".drv") || !strings.HasPrefix(ev.OutPath, "/nix/store/") {
		t.Errorf("drv %q out %q", ev.DrvPath, ev.OutPath)
	}
	if n := countLines(evalLines, nixtest.TraceLine+"alpha"); n != 1 {
		t.Errorf("the evaluation printed %d trace lines, want 1: %q", n, evalLines)
	}
	var buildLines []string
	out, err := n.BuildDerivation(ctx, ev.DrvPath, func(l string) { buildLines = append(buildLines, l) })
	if err != nil {
		t.Fatalf("BuildDerivation: %v", err)
	}
	if out != ev.OutPath {
		t.Errorf("built %s, the evaluation said %s", out, ev.OutPath)
	}
	if n := countLines(buildLines, nixtest.TraceLine); n != 0 {
		t.Errorf("building the derivation evaluated the flake again: %q", buildLines)
	}

	ev, err = n.Evaluate(ctx, ref, "beta", nil)
	if err != nil || len(ev.Warnings) != 2 {
		t.Errorf("Evaluate(beta) = %+v, %v; want 2 warnings", ev, err)
	}
	ev, err = n.Evaluate(ctx, ref, "omega", nil)
	if err != nil || ev.Found || len(ev.Hosts) != 3 || ev.DrvPath != "" {
		t.Errorf("Evaluate(omega) = %+v, %v; want the hosts, not found", ev, err)
	}
	if _, err := n.Evaluate(ctx, ref, "delta", nil); err == nil || !strings.Contains(err.Error(), "fails on purpose") {
		t.Errorf("Evaluate(delta) = %v, want the evaluation error", err)
	}
	if _, err := n.Evaluate(ctx, ref, "-x", nil); !errors.Is(err, nix.ErrBadHost) {
		t.Errorf("Evaluate(-x) = %v, want ErrBadHost", err)
	}
	if _, err := n.BuildDerivation(ctx, ref+"#x", nil); !errors.Is(err, nix.ErrParse) {
		t.Errorf("BuildDerivation of a flake ref = %v, want ErrParse", err)
	}
}

func countLines(lines []string, substr string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}
