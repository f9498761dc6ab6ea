// Package tailnet joins panther processes to a tailnet with an embedded
// tsnet node, dials peers through it or through the machine's tailscaled,
// and authorizes gRPC calls by the tailnet identity of the caller.
//
// The agent and the controller both build a [Node] from a [Config]; the
// agent serves gRPC on [Node.Listen] (a listener that exists only on the
// tailnet, never on a host interface) guarded by an [Authorizer], and the
// controller dials agents through a [Dialer] with [DialOption].
// [ServerKeepalive] makes a server notice a vanished peer within seconds.
package tailnet
