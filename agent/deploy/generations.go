package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pantheros/panther/agent/journal"
)

// Which generations failed, and which one a rollback without a number goes
// to.

// failedGenerations returns the generations of gens that a deployment which
// did not keep its system (rolled back, failed, manual) created, with that
// deployment. A record only claims a generation that still links to the
// system it put into the profile (nix-env may reuse a number).
func failedGenerations(recs []*journal.Record, gens []Generation) map[int64]*journal.Record {
	paths := map[int64]string{}
	for _, g := range gens {
		paths[g.Number] = g.Path
	}
	out := map[int64]*journal.Record{}
	for _, r := range recs {
		if r.NewGeneration == 0 || !r.State.Failed() {
			continue
		}
		if p, ok := paths[r.NewGeneration]; ok && (p == "" || p == r.NewProfile()) {
			out[r.NewGeneration] = r
		}
	}
	return out
}

// previousGeneration is the target of a rollback that names no generation:
// the newest generation before the running one that holds another system
// and that no failed or rolled-back deployment created. The running one is
// the newest generation of the running system (its base system when a
// specialisation runs), else the profile's current generation cur.
func (e *Engine) previousGeneration(ctx context.Context, cur int64, gens []Generation) (int64, error) {
	run := e.running(ctx, slices.Clone(gens))
	var ref int64
	for _, g := range gens {
		if g.Path != "" && g.Path == run.base && g.Number > ref {
			ref = g.Number
		}
	}
	if ref == 0 {
		ref = cur
	}
	recs, _ := e.j.List()
	failed := failedGenerations(recs, gens)
	var want int64
	var skipped []string
	for _, g := range gens {
		if g.Number >= ref || g.Number <= want {
			continue
		}
		if r := failed[g.Number]; r != nil {
			skipped = append(skipped, fmt.Sprintf("%d (%s by %s)", g.Number, r.State, r.ID))
			continue
		}
		if g.Path == run.base {
			continue
		}
		want = g.Number
	}
	if want != 0 {
		return want, nil
	}
	older := slices.ContainsFunc(gens, func(g Generation) bool { return g.Number < ref })
	if !older {
		return 0, fmt.Errorf("%w: generation %d is the oldest; there is nothing to roll back to", ErrNoSuchGen, ref)
	}
	var failedNote string
	if len(skipped) > 0 {
		failedNote = "; failed: " + strings.Join(skipped, ", ")
	}
	return 0, fmt.Errorf("%w: no generation before %d holds another system that did not fail%s", ErrNoSuchGen, ref, failedNote)
}
