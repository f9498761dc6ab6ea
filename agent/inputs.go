package agent

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/internal/flakeinputs"
)

// inputRootDir holds the garbage collector roots of the most recently
// used inputs (beside the deployments' roots in .../gcroots/panther).
const inputRootDir = "/nix/var/nix/gcroots/panther-inputs"

// newInputStore is where uploaded locked flake inputs enter the nix store:
// each NAR is received under <stateDir>/inputs-tmp (emptied at start: an
// upload a crash interrupted never entered the store), checked against the
// signed NAR hash and store path, and bounded by maxUploadBytes.
func newInputStore(cfg *config.Config, n nixAdapter, log hclog.Logger) flakeinputs.Store {
	dir := filepath.Join(cfg.StateDir, "inputs-tmp")
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("cleaning the input upload directory", "error", err)
	}
	return flakeinputs.Store{Nix: n.n, TempDir: dir, MaxBytes: cfg.MaxUploadBytes, RootDir: inputRootDir, Log: log.Named("inputs")}
}
