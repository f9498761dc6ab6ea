package deploy

import "context"

// closureSizer is an optional fast path of Nix: the closure sizes in bytes
// of store paths in one call (path → size; a path nix does not know is
// left out). The fleet diff adds the difference up across hosts.
type closureSizer interface {
	ClosureSizes(ctx context.Context, paths ...string) (map[string]int64, error)
}

// closureSizes fills the summary's closure sizes when the Nix port can
// tell them. A failure is a warning: the summary is only less complete.
func (e *Engine) closureSizes(ctx context.Context, sum *Summary) {
	cs, ok := e.nix.(closureSizer)
	if !ok {
		return
	}
	sizes, err := cs.ClosureSizes(ctx, sum.CurrentPath, sum.NewPath)
	if err != nil {
		e.log.Warn("could not read closure sizes", "error", err)
		return
	}
	if sum.CurrentPath != "" {
		sum.CurrentClosureSize = sizes[sum.CurrentPath]
	}
	sum.NewClosureSize = sizes[sum.NewPath]
}
