package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The system profile steps of a deployment: checking that a path is a
// NixOS system before it goes into the profile, and setting the profile
// back in a rollback.

// checkSystem refuses a store path that is not a NixOS system (no
// nixos-version), as nixos-rebuild does before `nix-env --set`.
func checkSystem(path string) error {
	if _, err := os.Stat(filepath.Join(path, "nixos-version")); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%w: %s has no nixos-version; it cannot become the system profile", ErrNotNixOS, path)
		}
		return fmt.Errorf("%w: %s: %v", ErrNotNixOS, path, err)
	}
	return nil
}

// restoreProfile sets the system profile back to the previous system at
// the start of a rollback. A failure (a broken nix-daemon, a full disk)
// does not stop the rollback: the previous system's switch runs all the
// same, since the running system matters most; the failure is recorded in
// the journal and reported with the result.
func (d *deployment) restoreProfile(ctx context.Context) {
	e, rec := d.e, d.rec
	if err := e.nix.SetProfile(ctx, e.opts.Profile, rec.PreviousProfile()); err != nil {
		rec.ProfileError = err.Error()
		if err := e.j.Update(rec); err != nil {
			e.log.Error("journal update", "deployment", rec.ID, "error", err)
		}
		d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("could not set the system profile back to %s (switching to the previous system all the same): %v", rec.PreviousProfile(), err)})
		return
	}
	rec.ProfileError = ""
	if g := e.currentGenNumber(ctx); g != 0 {
		rec.RollbackGeneration = g
	}
	if err := e.j.Update(rec); err != nil {
		e.log.Error("journal update", "deployment", rec.ID, "error", err)
	}
}

// withProfileNote adds to a rollback's reason that the profile could not
// be set back, and the command that does it, when that happened.
func (d *deployment) withProfileNote(reason string) string {
	rec := d.rec
	if rec.ProfileError == "" {
		return reason
	}
	rec.RecoveryCommands = []string{"nix-env -p " + d.e.opts.Profile + " --set " + rec.PreviousProfile()}
	return fmt.Sprintf("%s; the previous system runs, but the system profile (the boot default) could not be set back to it: %s", reason, rec.ProfileError)
}
