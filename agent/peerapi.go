package agent

import (
	"github.com/hashicorp/go-hclog"
	"tailscale.com/feature/buildfeatures"
)

// PeerAPIBuildTag is the Go build tag panther-agent must be built with. It
// removes tsnet's PeerAPI server, which in tsnet's netstack mode still opens
// a kernel TCP listener on all of the host's interfaces; the agent is meant
// to be reachable on the tailnet only.
const PeerAPIBuildTag = "ts_omit_peerapiserver"

// warnPeerAPIListener tells the operator, once at start, when this binary was
// built without PeerAPIBuildTag and so listens on the host's interfaces.
func warnPeerAPIListener(log hclog.Logger) {
	if buildfeatures.HasPeerAPIServer {
		log.Warn("built without the " + PeerAPIBuildTag + " tag: tsnet's PeerAPI listens on a TCP port on all of this host's interfaces; rebuild with -tags " + PeerAPIBuildTag)
	}
}
