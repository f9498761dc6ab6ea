package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Garbage collector roots. Between the build and the end of a deployment
// two systems must survive a garbage collection (nix.gc.automatic, a
// manual nix-collect-garbage): the new system, which `nix build --no-link`
// does not root and which is in no profile until the switch, and the
// previous system, the rollback target, which a `nix-env
// --delete-generations` may have taken out of the profile. Each is a
// symlink <GCRootDir>/<deployment>-<kind> for as long as the deployment is
// in flight; a final state (confirmed, rolled back, failed, ...) removes
// them, and the engine's start removes those a crash left behind.

// Kinds of root.
const (
	rootNew      = "new"
	rootPrevious = "previous"
)

// addRoot roots storePath for this deployment. Failing to is a warning:
// the deployment goes on unprotected rather than not at all.
func (d *deployment) addRoot(kind, storePath string) {
	if storePath == "" {
		return
	}
	if err := d.e.writeRoot(d.rec.ID+"-"+kind, storePath); err != nil {
		d.emit(Event{Kind: EventWarning, Line: fmt.Sprintf("could not protect the %s system from garbage collection: %v", kind, err)})
	}
}

func (e *Engine) writeRoot(name, storePath string) error {
	if err := os.MkdirAll(e.opts.GCRootDir, 0o755); err != nil {
		return err
	}
	link := filepath.Join(e.opts.GCRootDir, name)
	if cur, err := os.Readlink(link); err == nil && cur == storePath {
		return nil
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(storePath, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// dropRoots removes the roots of deployment id.
func (e *Engine) dropRoots(id string) {
	for _, kind := range []string{rootNew, rootPrevious} {
		link := filepath.Join(e.opts.GCRootDir, id+"-"+kind)
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("removing a garbage collector root", "deployment", id, "root", link, "error", err)
		}
	}
}

// sweepRoots removes the roots of deployments that are over or unknown
// (the agent stopped between the end of a deployment and the removal).
func (e *Engine) sweepRoots() {
	ents, err := os.ReadDir(e.opts.GCRootDir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		name := ent.Name()
		id, ok := strings.CutSuffix(name, "-"+rootNew)
		if !ok {
			id, ok = strings.CutSuffix(name, "-"+rootPrevious)
		}
		if !ok {
			if strings.HasSuffix(name, ".tmp") {
				os.Remove(filepath.Join(e.opts.GCRootDir, name))
			}
			continue
		}
		// A confirmed deployment whose boot step is still pending keeps its
		// roots: the new system is in no profile yet (testboot.go).
		if rec, err := e.j.Get(id); err == nil && (!rec.State.Final() || rec.BootPending) {
			continue
		}
		if err := os.Remove(filepath.Join(e.opts.GCRootDir, name)); err != nil {
			e.log.Warn("removing a stale garbage collector root", "root", name, "error", err)
		}
	}
}
