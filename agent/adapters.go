package agent

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/health"
	"github.com/pantheros/panther/internal/nix"
)

// nixAdapter presents internal/nix as the engine's Nix port.
type nixAdapter struct{ n *nix.Nix }

func newNix(cfg *config.Config, log hclog.Logger) nixAdapter {
	var extra []string
	for _, l := range strings.Split(cfg.NixExtraConfig, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			extra = append(extra, l)
		}
	}
	return nixAdapter{n: nix.New(nix.Options{ExtraConfig: extra, ProfileStore: profileStore(os.Geteuid())}, log)}
}

// profileStore is the store nix-env uses for the system profile: as root
// the local store, so that setting the profile back in a rollback does not
// depend on the nix-daemon of the system being rolled back.
func profileStore(euid int) string {
	if euid == 0 {
		return "local"
	}
	return ""
}

func (a nixAdapter) Build(ctx context.Context, installable string, onLine func(string)) (string, error) {
	return a.n.Build(ctx, installable, onLine)
}

func (a nixAdapter) Hosts(ctx context.Context, flakeRef string) ([]string, error) {
	return a.n.Hosts(ctx, flakeRef)
}

func (a nixAdapter) Warnings(ctx context.Context, flakeRef, host string) ([]string, error) {
	return a.n.Warnings(ctx, flakeRef, host)
}

func (a nixAdapter) HostInfo(ctx context.Context, flakeRef, host string) ([]string, []string, error) {
	return a.n.HostInfo(ctx, flakeRef, host)
}

// Evaluate is the engine's one evaluation per deploy (evalonce.go).
func (a nixAdapter) Evaluate(ctx context.Context, flakeRef, host string, onLine func(string)) (deploy.Evaluation, error) {
	ev, err := a.n.Evaluate(ctx, flakeRef, host, onLine)
	return deploy.Evaluation{Hosts: ev.Hosts, Found: ev.Found, Warnings: ev.Warnings, DrvPath: ev.DrvPath, OutPath: ev.OutPath}, err
}

// BuildDerivation builds the evaluated derivation without evaluating again.
func (a nixAdapter) BuildDerivation(ctx context.Context, drvPath string, onLine func(string)) (string, error) {
	return a.n.BuildDerivation(ctx, drvPath, onLine)
}

// CurrentGeneration reads the profile link; nix-env only when that fails.
func (a nixAdapter) CurrentGeneration(ctx context.Context, profile string) (int64, error) {
	if n, err := nix.CurrentGeneration(profile); err == nil {
		return int64(n), nil
	}
	gens, err := a.n.Generations(ctx, profile)
	if err != nil {
		return 0, err
	}
	for _, g := range gens {
		if g.Current {
			return int64(g.Number), nil
		}
	}
	return 0, nil
}

// SetProfile refuses a store path that is not a NixOS system.
func (a nixAdapter) SetProfile(ctx context.Context, profile, storePath string) error {
	return a.n.SetSystemProfile(ctx, profile, storePath)
}

func (a nixAdapter) DiffClosures(ctx context.Context, oldPath, newPath string) ([]deploy.ClosureChange, error) {
	chs, err := a.n.DiffClosures(ctx, oldPath, newPath)
	out := make([]deploy.ClosureChange, 0, len(chs))
	for _, c := range chs {
		d := deploy.ClosureChange{Name: c.Name, OldVersion: strings.Join(c.Old, ", "), NewVersion: strings.Join(c.New, ", ")}
		if c.SizeDelta != 0 {
			d.SizeDelta = fmt.Sprintf("%+.1f KiB", float64(c.SizeDelta)/1024)
			d.SizeBytes = c.SizeDelta
		}
		out = append(out, d)
	}
	return out, err
}

// ClosureSizes implements the engine's optional closureSizer.
func (a nixAdapter) ClosureSizes(ctx context.Context, paths ...string) (map[string]int64, error) {
	return a.n.ClosureSizes(ctx, paths...)
}

func (a nixAdapter) Generations(ctx context.Context, profile string) ([]deploy.Generation, error) {
	gens, err := a.n.Generations(ctx, profile)
	out := make([]deploy.Generation, 0, len(gens))
	for _, g := range gens {
		out = append(out, deploy.Generation{Number: int64(g.Number), Created: g.Created, Current: g.Current, Path: g.Path})
	}
	return out, err
}

// healthAdapter presents agent/health as the engine's Health port and the
// server's SystemStatus.
type healthAdapter struct {
	c   *health.Checker
	cfg *config.Config
}

func newHealth(ctx context.Context, cfg *config.Config, log hclog.Logger) (*healthAdapter, error) {
	c, err := health.New(health.Config{Connect: health.BusConnector(""), Logger: log})
	if err != nil {
		return nil, err
	}
	return &healthAdapter{c: c, cfg: cfg}, nil
}

func (h *healthAdapter) Close() { h.c.Close() }

func (h *healthAdapter) FailedUnits(ctx context.Context) ([]string, error) {
	snap, err := h.c.Baseline(ctx)
	return snap.Failed, err
}

func (h *healthAdapter) Check(ctx context.Context, baseline []string, extraCritical []string, report func(deploy.HealthReport)) (deploy.HealthVerdict, error) {
	rep, err := h.c.Check(ctx, health.Snapshot{Failed: baseline}, health.SpecFromConfig(h.cfg, extraCritical), func(r health.Result) {
		report(deploy.HealthReport{Name: r.Kind + " " + r.Name, OK: r.OK, Detail: r.Detail})
	})
	if err != nil {
		return deploy.HealthVerdict{}, err
	}
	return deploy.HealthVerdict{OK: rep.OK, Reason: rep.Reason(), NewlyFailed: rep.NewlyFailed, PreviouslyFailed: rep.PreviouslyFailed}, nil
}

func (h *healthAdapter) Status(ctx context.Context) (string, []string, error) {
	return h.c.Status(ctx)
}

// The adapter offers the engine's optional fast paths (one evaluation for
// hosts and warnings; the generation number from the profile link).
var _ interface {
	HostInfo(ctx context.Context, flakeRef, host string) ([]string, []string, error)
	Evaluate(ctx context.Context, flakeRef, host string, onLine func(string)) (deploy.Evaluation, error)
	BuildDerivation(ctx context.Context, drvPath string, onLine func(string)) (string, error)
	CurrentGeneration(ctx context.Context, profile string) (int64, error)
} = nixAdapter{}
