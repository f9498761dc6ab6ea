package config

import (
	"fmt"

	"github.com/pantheros/panther/internal/nixcache"
)

// DefaultFleetCachePort is the fleet cache's tailnet port.
const DefaultFleetCachePort = nixcache.DefaultPort

// FleetCache configures build once per closure: the agent serves its store
// read-only as a Nix binary cache on the tailnet (to peers carrying one of
// the agent's own tags only), signed with the fleet's secret key, and
// substitutes a system a build peer of the same rollout has or builds
// instead of building it again, checking it against TrustedKeys.
type FleetCache struct {
	// SecretKeyFile is the fleet's Nix signing key (`nix key
	// generate-secret`); the agent serves its store only when it is set.
	// Default: "" (no serving).
	SecretKeyFile string `json:"secretKeyFile"`
	// TrustedKeys are the Nix public keys (`nix key
	// convert-secret-to-public`) a substitute from a peer must be signed
	// with; the agent substitutes from peers only when it is set.
	// Default: none (every host builds by itself).
	TrustedKeys []string `json:"trustedKeys"`
	// Port is the cache's tailnet port, the same on every agent.
	// Default: 7444.
	Port int `json:"port"`
	// StartWait bounds how long the agent waits for a build peer that has
	// not started the rollout or not evaluated yet (a peer that builds is
	// waited for). Default: 2m.
	StartWait Duration `json:"startWait"`
}

// Serves reports whether the agent serves its store to peers.
func (f FleetCache) Serves() bool { return f.SecretKeyFile != "" }

// Fetches reports whether the agent substitutes from peers.
func (f FleetCache) Fetches() bool { return len(f.TrustedKeys) > 0 }

func (c *Config) applyFleetCacheDefaults() {
	f := &c.FleetCache
	if f.Port == 0 {
		f.Port = DefaultFleetCachePort
	}
	setDuration(&f.StartWait, DefaultFleetCacheStartWait)
}

func (c *Config) validateFleetCache(v *validator) {
	f := c.FleetCache
	if f.Port < 0 || f.Port > 65535 {
		v.add("fleetCache.port", fmt.Sprintf("must be between 1 and 65535, got %d", f.Port))
	} else if f.Port == c.Port || f.Port == c.Metrics.Port {
		v.add("fleetCache.port", fmt.Sprintf("%d is already taken by port or metrics.port; pick another", f.Port))
	}
	for _, k := range f.TrustedKeys {
		if _, err := nixcache.ParsePublicKey(k); err != nil {
			v.add("fleetCache.trustedKeys", fmt.Sprintf("%q: %v", k, err))
		}
	}
	if f.SecretKeyFile != "" {
		if _, err := nixcache.LoadSecretKey(f.SecretKeyFile); err != nil {
			v.add("fleetCache.secretKeyFile", err.Error())
		}
		if len(c.Tags) == 0 {
			v.add("fleetCache.secretKeyFile", "the cache serves peers carrying the agent's own tags; set tags")
		}
	}
}
