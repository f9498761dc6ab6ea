package deploy

import (
	"context"
	"fmt"
	"strings"
)

// Evaluate once (issue 12 item 3). A Nix port that is an evaluator yields,
// in one evaluation of the flake, the host check (the flake's
// nixosConfigurations names), the host's config.warnings and the
// derivation of its system; the build phase then builds that derivation
// without evaluating the flake again. A prompted deploy waits for approval
// after its dry-activate (approve.go), so "y" evaluates nothing either: one
// evaluation per deploy, --yes or prompted.

// Evaluation is the one evaluation of a deploy.
type Evaluation struct {
	Hosts    []string // nixosConfigurations names
	Found    bool     // the requested attribute is among them
	Warnings []string
	DrvPath  string // the system's derivation
	OutPath  string // its out path, once built
}

// evaluator is the optional one-evaluation path of Nix (internal/nix
// implements it through the agent's adapter). Without it the engine
// evaluates the host check and warnings, then builds the installable
// (which evaluates again).
type evaluator interface {
	Evaluate(ctx context.Context, flakeRef, host string, onLine func(string)) (Evaluation, error)
	BuildDerivation(ctx context.Context, drvPath string, onLine func(string)) (string, error)
}

// evaluate runs the validate phase's evaluation when the port can do it in
// one: it returns the evaluation and true, or false when the caller must
// use the older two-step path. Its errors name the missing host with the
// available ones, as that path's do.
func (d *deployment) evaluate(ctx context.Context, req Request) (*Evaluation, bool, error) {
	ev, ok := d.e.nix.(evaluator)
	if !ok {
		return nil, false, nil
	}
	res, err := ev.Evaluate(ctx, req.FlakeRef, req.FlakeAttr, func(l string) { d.emit(Event{Kind: EventLog, Phase: PhaseValidate, Line: l}) })
	if err != nil {
		return nil, true, fmt.Errorf("evaluating the flake: %w", err)
	}
	if !res.Found {
		return nil, true, fmt.Errorf("%w: %q is not in nixosConfigurations (hosts: %s)", ErrUnknownHost, req.FlakeAttr, strings.Join(res.Hosts, ", "))
	}
	d.logf(PhaseValidate, "evaluated %s: %s", req.FlakeAttr, res.DrvPath)
	d.eval = &res
	return &res, true, nil
}

// build builds the evaluated derivation, or the flake's installable when
// there is no evaluation (the older path).
func (d *deployment) build(ctx context.Context, req Request, ev *Evaluation, onLine func(string)) (string, error) {
	if ev != nil {
		return d.e.nix.(evaluator).BuildDerivation(ctx, ev.DrvPath, onLine)
	}
	installable := req.FlakeRef + "#nixosConfigurations." + req.FlakeAttr + ".config.system.build.toplevel"
	return d.e.nix.Build(ctx, installable, onLine)
}
