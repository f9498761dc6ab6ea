// Package tailnet joins panther processes to a tailnet with an embedded
// tsnet node, dials peers through it or through the machine's tailscaled,
// and authorizes gRPC calls by the tailnet identity of the caller.
//
// The agent and the controller both build a [Node] from a [Config]; the
// agent serves gRPC on [Node.Listen] (a listener that exists only on the
// tailnet, never on a host interface) guarded by an [Authorizer], and the
// controller dials agents through a [Dialer] with [DialOptions].
// [ServerKeepalive] makes a server notice a vanished peer within seconds.
//
// A Node restarted from its StateDir — pantherctl run after run — reaches
// its first RPC in tens of milliseconds. Plain tsnet (v1.102.5) often
// needs 5 s or even 21 s there; Node avoids it by reusing its UDP port
// (port.go), waiting in Up for a live netmap and its DERP home
// (ready.go), disco-pinging a peer before the first dial (peergate.go)
// and finishing TCP close handshakes in Close (linger.go). Each file
// explains the failure it prevents.
//
// Binaries should be built with the ts_omit_peerapiserver tag: otherwise
// tsnet's PeerAPI server listens on a host TCP port on all interfaces.
package tailnet
