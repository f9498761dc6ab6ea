package deploy

import "github.com/pantheros/panther/agent/journal"

// SourceInfo is where a deployment's flake source came from: the git
// revision of the controller's checkout and the locked inputs shipped with
// it (see internal/flakeinputs); the journal record keeps it.
type SourceInfo struct {
	Rev   string // git commit id, "" = not known
	Dirty bool   // the checkout had uncommitted changes
	// Inputs are the store paths of the shipped inputs, verified in the
	// store before the deployment started.
	Inputs []string
	// FetchInputs: nothing was shipped, nix fetches the inputs.
	FetchInputs bool
}

func (s SourceInfo) record(rec *journal.Record) {
	rec.SourceRev, rec.SourceDirty = s.Rev, s.Dirty
	rec.Inputs, rec.FetchInputs = s.Inputs, s.FetchInputs
}
