package deploy

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
)

// Specialisations. A NixOS system may carry specialisations
// (<toplevel>/specialisation/<name>, each a whole system); the host runs one
// after `switch-to-configuration switch` of it, while the system profile
// and the boot default keep the base system. So:
//
//   - the previous system is recorded as what runs (the specialisation) and
//     the base system the profile held; a rollback puts the base back into
//     the profile and switches to the specialisation again;
//   - a deploy (or a requested rollback) in switch mode keeps the host in
//     the specialisation it runs when the new system has one of that name,
//     and activates the new base system otherwise; the profile gets the new
//     base system. A boot deploy makes the base system the boot default, as
//     the boot loader boots it. The journal records both choices.

// runningSystem is what /run/current-system holds.
type runningSystem struct {
	path string // the running toplevel ("" if unknown)
	base string // the toplevel the profile holds for it: path, or the system path is a specialisation of
	spec string // the specialisation's name, "" for a base system
}

// running reads the running system and, when it is a specialisation of the
// profile's current system (or else of another generation), which one. It
// lists the generations (gens, or asks nix when gens is nil) only when the
// running system is not the one the profile link points at.
func (e *Engine) running(ctx context.Context, gens []Generation) runningSystem {
	path := e.currentSystem()
	rs := runningSystem{path: path, base: path}
	if path == "" {
		return rs
	}
	var bases []string
	if p, err := filepath.EvalSymlinks(e.opts.Profile); err == nil {
		if p == path {
			return rs
		}
		bases = append(bases, p)
	}
	if gens == nil {
		gens, _ = e.nix.Generations(ctx, e.opts.Profile)
	}
	// The current generation first, then the newest.
	slices.SortStableFunc(gens, func(a, b Generation) int {
		if a.Current != b.Current {
			if a.Current {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.Number, a.Number)
	})
	for _, g := range gens {
		if g.Path == path {
			return rs
		}
		if g.Path != "" && !slices.Contains(bases, g.Path) {
			bases = append(bases, g.Path)
		}
	}
	for _, b := range bases {
		if name := specialisationOf(b, path); name != "" {
			rs.base, rs.spec = b, name
			return rs
		}
	}
	return rs
}

// specialisationOf returns the name of base's specialisation that resolves
// to path, or "".
func specialisationOf(base, path string) string {
	dir := filepath.Join(base, "specialisation")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, ent := range ents {
		if p, err := filepath.EvalSymlinks(filepath.Join(dir, ent.Name())); err == nil && p == path {
			return ent.Name()
		}
	}
	return ""
}

// activation chooses what a switch to toplevel in mode activates, records
// the choice and returns the path to activate (see the package comment
// above on specialisations).
func (d *deployment) activation(ctx context.Context, toplevel, mode string, p Phase) string {
	rec := d.rec
	rec.NewProfilePath, rec.Specialisation = "", ""
	run := d.e.running(ctx, nil)
	if run.spec == "" {
		return toplevel
	}
	if mode != "switch" {
		d.logf(p, "the host runs specialisation %s; the boot default becomes the new base system", run.spec)
		return toplevel
	}
	spec, err := filepath.EvalSymlinks(filepath.Join(toplevel, "specialisation", run.spec))
	if err != nil {
		d.emit(Event{Kind: EventWarning, Line: "the host runs specialisation " + run.spec + ", which the new system does not have: activating its base system"})
		return toplevel
	}
	rec.NewProfilePath, rec.Specialisation = toplevel, run.spec
	d.logf(p, "the host runs specialisation %s: activating the new system's %s (%s); the profile gets its base system", run.spec, run.spec, spec)
	return spec
}

// recordPrevious records the running system as the rollback target, with
// the base system the profile must get back when it is a specialisation.
func (d *deployment) recordPrevious(ctx context.Context) {
	rec := d.rec
	run := d.e.running(ctx, nil)
	rec.PreviousPath = run.path
	rec.PreviousProfilePath, rec.PreviousSpecialisation = "", ""
	if run.spec != "" {
		rec.PreviousProfilePath, rec.PreviousSpecialisation = run.base, run.spec
	}
}
