package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pantheros/panther/controller/buildplan"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/nixcache"
	"github.com/pantheros/panther/internal/tailnet"
)

// buildLocal is --build-on local: pantherctl builds every host's system with
// its own nix, then serves its store to the agents from its tailnet node
// (the same cache code as the agents', port nixcache.DefaultPort, only to
// nodes with --cache-peer-tag) and becomes the rollout's only build peer.
// The returned func stops serving.
func (c *CLI) buildLocal(ctx context.Context, o *deployOpts, n *network, hosts []inventory.Host, plan *buildplan.Plan) (func(), error) {
	if n.node == nil {
		return nil, exitf(ExitUsage, "--build-on local serves the systems from pantherctl's own tailnet node: use --via tsnet")
	}
	if o.cacheKey == "" {
		return nil, exitf(ExitUsage, "--build-on local needs --cache-key FILE: the fleet's nix signing key, whose public key the agents trust (fleetCache.trustedKeys)")
	}
	key, err := nixcache.LoadSecretKey(o.cacheKey)
	if err != nil {
		return nil, exitf(ExitUsage, "%v", err)
	}
	abs, err := filepath.Abs(o.flake)
	if err != nil {
		return nil, err
	}
	ref := abs
	if _, err := os.Stat(filepath.Join(abs, ".git")); err != nil {
		ref = "path:" + abs
	}
	nx := nix.New(nix.Options{}, c.log)
	coord := nixcache.NewCoordinator()
	t0 := time.Now()
	built := map[string]bool{}
	for _, h := range hosts {
		installable, err := nix.Toplevel(ref, h.Name)
		if err != nil {
			return nil, exitf(ExitError, "%v", err)
		}
		fmt.Fprintf(c.io.Stdout, "==> build %s locally\n", h.Name)
		p, err := nx.Build(ctx, installable, func(l string) { fmt.Fprintf(c.io.Stderr, "    %s\n", l) })
		if err != nil {
			return nil, exitf(ExitError, "--build-on local: %v", err)
		}
		built[p] = true
		// Another path of this rollout is "other" for the agents: they
		// build it themselves instead of waiting.
		coord.Done(plan.RolloutID, p, true)
	}
	authz, err := tailnet.NewAuthorizer(tailnet.AuthorizerConfig{AllowedTags: []string{o.cachePeerTag}}, n.node, c.log)
	if err != nil {
		return nil, exitf(ExitUsage, "--cache-peer-tag: %v", err)
	}
	ln, err := n.node.Listen("tcp", fmt.Sprintf(":%d", nixcache.DefaultPort))
	if err != nil {
		return nil, exitf(ExitError, "--build-on local: %v", err)
	}
	srv := &http.Server{
		Handler:           authz.HTTPHandler(&nixcache.Server{Store: nix.CacheStore{N: nx}, Key: &key, States: coord, Log: c.log.Named("fleet-cache")}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			c.log.Warn("fleet cache stopped", "error", err)
		}
	}()
	plan.Peers = []string{c.g.hostname}
	fmt.Fprintf(c.io.Stdout, "==> built %d system(s) locally in %s; the agents substitute them from %s\n", len(built), time.Since(t0).Round(time.Millisecond), c.g.hostname)
	return func() { _ = srv.Close() }, nil
}
