package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/nixcache"
	"github.com/pantheros/panther/internal/tailnet"
)

// fleetCache is the engine's deploy.FleetCache over internal/nixcache: the
// build-state coordinator its cache serves, the client that asks the peers,
// and the host's nix, which substitutes through a forwarder on 127.0.0.1
// (the host's nix cannot reach the userspace tailnet).
type fleetCache struct {
	n       *nix.Nix
	coord   *nixcache.Coordinator
	client  *nixcache.Client
	trusted []string
	log     hclog.Logger
}

var _ deploy.FleetCache = (*fleetCache)(nil)

// newFleetCache returns nil when the config enables no fleet cache. dial
// reaches the tailnet (set once the node exists).
func newFleetCache(cfg *config.Config, n *nix.Nix, dial nixcache.DialFunc, log hclog.Logger) *fleetCache {
	f := cfg.FleetCache
	if !f.Serves() && !f.Fetches() {
		return nil
	}
	log = log.Named("fleet-cache")
	return &fleetCache{
		n: n, coord: nixcache.NewCoordinator(), trusted: f.TrustedKeys, log: log,
		client: &nixcache.Client{Dial: dial, Port: f.Port, StartWait: f.StartWait.Duration, Log: log},
	}
}

func (c *fleetCache) OutPath(ctx context.Context, installable string) (string, error) {
	return c.n.OutPath(ctx, installable)
}

func (c *fleetCache) Evaluating(rollout string) { c.coord.Evaluating(rollout) }

func (c *fleetCache) Building(rollout, p string) { c.coord.Building(rollout, p) }

func (c *fleetCache) Done(rollout, p string, ok bool) { c.coord.Done(rollout, p, ok) }

func (c *fleetCache) Choose(ctx context.Context, rollout, p string, peers []string, logf func(string, ...any)) (string, error) {
	if len(c.trusted) == 0 {
		return "", nil // nothing to check a substitute against: build
	}
	return c.client.Choose(ctx, rollout, p, peers, logf)
}

func (c *fleetCache) Substitute(ctx context.Context, peer, p string, onLine func(string)) (int64, error) {
	fw, err := c.client.Forward(peer)
	if err != nil {
		return 0, err
	}
	defer fw.Close()
	err = c.n.CopyFrom(ctx, fw.URL, p, c.trusted, onLine)
	return fw.Bytes.Load(), err
}

// serveFleetCache serves the store read-only as a binary cache on the
// tailnet port, to peers carrying one of the agent's own tags only. It
// returns a stop func.
func serveFleetCache(cfg *config.Config, c *fleetCache, node *tailnet.Node, log hclog.Logger) (func(), error) {
	if c == nil || !cfg.FleetCache.Serves() {
		return func() {}, nil
	}
	key, err := nixcache.LoadSecretKey(cfg.FleetCache.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	authz, err := tailnet.NewAuthorizer(tailnet.AuthorizerConfig{AllowedTags: cfg.Tags}, node, log.Named("fleet-cache"))
	if err != nil {
		return nil, fmt.Errorf("fleet cache: %w", err)
	}
	ln, err := node.Listen("tcp", fmt.Sprintf(":%d", cfg.FleetCache.Port))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           authz.HTTPHandler(&nixcache.Server{Store: nix.CacheStore{N: c.n}, Key: &key, States: c.coord, Log: c.log}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Warn("fleet cache stopped", "error", err)
		}
	}()
	log.Info("serving the fleet cache on the tailnet", "port", cfg.FleetCache.Port, "allowedTags", cfg.Tags, "key", key.Public().String())
	return func() { _ = srv.Close() }, nil
}

// asFleetCache keeps a nil *fleetCache a nil interface.
func asFleetCache(c *fleetCache) deploy.FleetCache {
	if c == nil {
		return nil
	}
	return c
}

// CopyTo lets the engine push a closure it built (--push-to).
func (a nixAdapter) CopyTo(ctx context.Context, uri, storePath string, onLine func(string)) error {
	return a.n.CopyTo(ctx, uri, storePath, onLine)
}
