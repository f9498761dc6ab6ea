package deploy

import "context"

// closureSizer is an optional fast path of Nix: the closure sizes in bytes
// of store paths in one call (path → size; a path nix does not know is
// left out). The fleet diff adds the difference up across hosts.
type closureSizer interface {
	ClosureSizes(ctx context.Context, paths ...string) (map[string]int64, error)
}

// closureSizes fills the summary's closure sizes in the background when
// the Nix port can tell them, and returns a channel closed when it is done
// (at once without a closureSizer). The caller runs it only when the
// system changes (as diff-closures), next to diff-closures, so that it
// adds no nix call to a no-op deploy and no wait to the others. A failure
// is logged: the summary is only less complete.
func (e *Engine) closureSizes(ctx context.Context, sum *Summary) <-chan struct{} {
	done := make(chan struct{})
	cs, ok := e.nix.(closureSizer)
	if !ok {
		close(done)
		return done
	}
	cur, next := sum.CurrentPath, sum.NewPath
	go func() { // owned by the caller, which waits on done
		defer close(done)
		sizes, err := cs.ClosureSizes(ctx, cur, next)
		if err != nil {
			e.log.Warn("could not read closure sizes", "error", err)
			return
		}
		sum.CurrentClosureSize, sum.NewClosureSize = sizes[cur], sizes[next]
	}()
	return done
}
