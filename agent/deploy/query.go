package deploy

import (
	"context"

	"github.com/pantheros/panther/agent/journal"
)

// Status is the host as the engine sees it.
type Status struct {
	CurrentPath       string
	CurrentGeneration int64
	Version           string
	Pending           *journal.Record // awaiting confirmation, if any
	// Approving is the deployment awaiting approval (running, in phase
	// approve, until its ApprovalDeadline), if any.
	Approving *journal.Record
	Active    string          // deployment holding the lock, if any
	Last      *journal.Record // newest deployment, if any
}

// Status reports the running system and the deployments in flight.
func (e *Engine) Status(ctx context.Context) Status {
	st := Status{CurrentPath: e.currentSystem()}
	st.Version = readVersion(st.CurrentPath)
	st.CurrentGeneration = e.currentGenNumber(ctx)
	e.mu.Lock()
	st.Active = e.active
	e.mu.Unlock()
	if recs, err := e.j.List(); err == nil && len(recs) > 0 {
		st.Last = recs[0]
		for _, r := range recs {
			if r.State == journal.StateAwaiting && st.Pending == nil {
				st.Pending = r
			}
			if awaitsApproval(r) && st.Approving == nil {
				st.Approving = r
			}
		}
	}
	return st
}

// GenerationInfo is a profile generation with what panther knows of it.
type GenerationInfo struct {
	Generation
	Version      string
	DeploymentID string
	Result       string // confirmed, rolled-back, awaiting, boot-scheduled, manual, rollback, ...
	Reason       string
	// Failed: a deployment that did not keep this generation's system
	// (rolled back, failed, manual) created it; a rollback without a
	// generation number never goes to it.
	Failed bool
	// SourceRev and SourceDirty: the git revision of the source the
	// deployment that created it built.
	SourceRev   string
	SourceDirty bool
}

// Generations lists the system profile's generations, newest first, joined
// with the deployments that created them.
func (e *Engine) Generations(ctx context.Context) ([]GenerationInfo, error) {
	gens, err := e.nix.Generations(ctx, e.opts.Profile)
	if err != nil {
		return nil, err
	}
	recs, _ := e.j.List()
	byGen := map[int64]*journal.Record{}
	rollbackOf := map[int64]*journal.Record{}
	for i := len(recs) - 1; i >= 0; i-- { // oldest first, newer records win
		r := recs[i]
		if r.NewGeneration != 0 {
			byGen[r.NewGeneration] = r
		}
		if r.RollbackGeneration != 0 {
			rollbackOf[r.RollbackGeneration] = r
		}
	}
	failed := failedGenerations(recs, gens)
	out := make([]GenerationInfo, 0, len(gens))
	for i := len(gens) - 1; i >= 0; i-- {
		g := gens[i]
		info := GenerationInfo{Generation: g, Version: readVersion(g.Path), Failed: failed[g.Number] != nil}
		if r := byGen[g.Number]; r != nil {
			info.DeploymentID = r.ID
			info.Result = string(r.State)
			info.Reason = r.Reason
			info.SourceRev, info.SourceDirty = r.SourceRev, r.SourceDirty
		} else if r := rollbackOf[g.Number]; r != nil {
			info.DeploymentID = r.ID
			info.Result = "rollback"
			info.Reason = "restored after: " + r.Reason
		}
		out = append(out, info)
	}
	return out, nil
}

// Deployments lists the kept deployment records, newest first.
func (e *Engine) Deployments(limit int) ([]*journal.Record, error) {
	recs, err := e.j.List()
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(recs) > limit {
		recs = recs[:limit]
	}
	return recs, nil
}
