package cli

import (
	"flag"
	"slices"
	"time"

	"github.com/pantheros/panther/controller/buildplan"
	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/controller/rollout"
)

// buildOnceFlags registers deploy's build once per closure flags.
func buildOnceFlags(fs *flag.FlagSet, o *deployOpts) {
	fs.StringVar(&o.buildOn, "build-on", "", "who builds: a host of the deploy (it builds first, the others substitute from it over the tailnet), "+
		"\"local\" (pantherctl builds with its own nix and serves the systems from its tailnet node; needs --cache-key), "+
		"\"none\" (every host builds by itself); default: the first host of each distinct system builds it and the others substitute it "+
		"(agents with fleetCache set)")
	fs.StringVar(&o.cacheKey, "cache-key", "", "with --build-on local: the fleet's nix signing key file (nix key generate-secret), which the agents trust")
	fs.StringVar(&o.cachePeerTag, "cache-peer-tag", "tag:panther-agent", "with --build-on local: the tag of the tailnet nodes pantherctl's cache serves")
	fs.StringVar(&o.pushTo, "push-to", "", "a Nix store URI (s3://..., ssh://..., file:///...) the host that builds a system copies its closure to (nix copy --to), "+
		"for a cache the fleet already uses")
}

// planBuilds returns the run's build plan and hosts in rollout order (the
// --build-on host first).
func planBuilds(o *deployOpts, hosts []inventory.Host) (buildplan.Plan, []inventory.Host, error) {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Addr()
	}
	p, err := buildplan.New(client.NewDeploymentID(time.Now()), names, o.buildOn)
	if err != nil {
		return p, hosts, err
	}
	if p.First != "" {
		i := slices.IndexFunc(hosts, func(h inventory.Host) bool { return h.Addr() == p.First })
		hosts = append([]inventory.Host{hosts[i]}, slices.Delete(slices.Clone(hosts), i, i+1)...)
	}
	return p, hosts, nil
}

// withBuildPlan puts the plan and the push target into the core's options:
// every intent of the rollout carries them.
func withBuildPlan(o *rollout.Options, p buildplan.Plan, pushTo string) {
	o.RolloutID, o.BuildPeers, o.PushTo = p.RolloutID, p.Peers, pushTo
}
