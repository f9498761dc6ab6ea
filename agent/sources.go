package agent

import (
	"context"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/archive"
)

// keepSources is how many uploaded sources the agent keeps besides those
// of unfinished deployments: enough to redeploy recent ones without a new
// upload, few enough that the store stays small.
const keepSources = 10

// sourceStore is the archive store with the agent's retention policy: after
// every upload (and at start) it keeps the keepSources newest trees and
// never the source of a deployment that is running or awaiting
// confirmation.
type sourceStore struct {
	archive.Store
	j   *journal.Journal
	log hclog.Logger
}

// Put stores the upload, then prunes.
func (s sourceStore) Put(ctx context.Context, digest string, r io.Reader, lim archive.Limits) (string, error) {
	p, err := s.Store.Put(ctx, digest, r, lim)
	if err == nil {
		s.prune()
	}
	return p, err
}

// prune applies the policy; failures are logged, never fatal.
func (s sourceStore) prune() {
	var protect []string
	recs, err := s.j.Unfinished()
	if err != nil {
		s.log.Warn("not pruning sources: reading the journal", "error", err)
		return
	}
	for _, r := range recs {
		if r.SourceDigest != "" {
			protect = append(protect, r.SourceDigest)
		}
	}
	removed, err := s.Prune(keepSources, protect...)
	if err != nil {
		s.log.Warn("pruning sources", "error", err)
	}
	if len(removed) > 0 {
		s.log.Info("pruned sources", "removed", len(removed), "kept", keepSources, "protected", len(protect))
	}
}

// start removes what uploads interrupted by a crash left behind, then
// prunes. Call it before serving.
func (s sourceStore) start() {
	if n, err := s.CleanStaging(); err != nil {
		s.log.Warn("cleaning source staging", "error", err)
	} else if n > 0 {
		s.log.Info("removed staging directories of interrupted uploads", "count", n)
	}
	s.prune()
}
