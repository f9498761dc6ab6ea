package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/pantheros/panther/agent/journal"
)

// A deploy evaluates the flake once: the host check, the warnings and the
// derivation come from that one evaluation, and the build builds the
// derivation (no hosts or warnings calls, no build of the installable).
func TestEvaluatesOnce(t *testing.T) {
	h := newHarness(t)
	h.nix.warnings = []string{"w1"}
	w, _ := h.deployAwaiting(switchReq("d1"))
	if got := h.nix.callsWith(""); !slices.Equal(filterPrefix(got, "evaluate", "hosts", "warnings", "build"),
		[]string{"evaluate " + testRef + " " + testHost, "build " + h.new + ".drv"}) {
		t.Errorf("nix calls: %q", got)
	}
	if ws := w.warnings(); !slices.Contains(ws, "w1") {
		t.Errorf("warnings = %q", ws)
	}
}

// A host missing from the flake is named with the ones it has, and nothing
// is built.
func TestEvaluateUnknownHost(t *testing.T) {
	h := newHarness(t)
	h.nix.setHosts("web1", "web2")
	res := h.submit(switchReq("d1")).result()
	wantOutcome(t, res, journal.StateFailed, `"yoga" is not in nixosConfigurations (hosts: web1, web2)`)
	if got := h.nix.callsWith("build"); len(got) != 0 {
		t.Errorf("built: %q", got)
	}
}

func filterPrefix(calls []string, prefixes ...string) []string {
	var out []string
	for _, c := range calls {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p+" ") {
				out = append(out, c)
			}
		}
	}
	return out
}
