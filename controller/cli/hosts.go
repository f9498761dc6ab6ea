package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pantheros/panther/internal/nix"
)

// localFlakeHosts lists the flake's nixosConfigurations with the local nix,
// or returns nil when there is no nix here (the inventory then stands in).
func (c *CLI) localFlakeHosts(ctx context.Context, flakeDir string) []string {
	if _, err := exec.LookPath("nix"); err != nil {
		return nil
	}
	abs, err := filepath.Abs(flakeDir)
	if err != nil {
		return nil
	}
	ref := abs
	if _, err := os.Stat(filepath.Join(abs, ".git")); err != nil {
		ref = "path:" + abs
	}
	hosts, err := nix.New(nix.Options{}, c.log).Hosts(ctx, ref)
	if err != nil {
		c.log.Warn("could not list the flake's hosts with the local nix", "error", err)
		return nil
	}
	return hosts
}
