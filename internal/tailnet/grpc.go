package tailnet

import (
	"context"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Keepalive timings. A tailnet peer that vanishes (process killed, node
// closed, network gone) sends no FIN or RST, so only pings notice it.
const (
	// serverPingAfter is how long a server connection may be idle before
	// the server pings the client.
	serverPingAfter = 2 * time.Second
	// serverPingTimeout is how long the server waits for the ping ack
	// before closing the connection, which ends its streams' contexts.
	serverPingTimeout = 2 * time.Second
	// clientPingAfter is the client's ping interval; gRPC raises anything
	// below 10s to 10s.
	clientPingAfter = 10 * time.Second
	// clientPingTimeout is how long the client waits for a ping ack.
	clientPingTimeout = 3 * time.Second
	// minClientPingInterval is the shortest client ping interval the server
	// tolerates before it sends GOAWAY "too_many_pings"; it must stay below
	// clientPingAfter.
	minClientPingInterval = 5 * time.Second
)

// ServerKeepalive returns the gRPC server options that make a server notice
// a vanished client within serverPingAfter+serverPingTimeout (about 4 s):
// the connection is closed and the contexts of its calls and streams end.
// They also let clients ping, even without active calls.
func ServerKeepalive() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    serverPingAfter,
			Timeout: serverPingTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             minClientPingInterval,
			PermitWithoutStream: true,
		}),
	}
}

// DialOptions returns the gRPC client options to reach a tailnet peer
// through d: a context dialer for targets of the form
// "passthrough:///host:port", client keepalive, and plaintext transport
// credentials — the connection is already encrypted and both ends
// authenticated by WireGuard, and callers are authorized by [Authorizer].
func DialOptions(d Dialer) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			// passthrough hands over the target's endpoint unchanged;
			// tolerate callers passing a bare "passthrough:///" prefix too.
			addr = strings.TrimPrefix(addr, "passthrough:///")
			return d.Dial(ctx, "tcp", addr)
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                clientPingAfter,
			Timeout:             clientPingTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
}

// Target returns the gRPC target for host:port on the tailnet, to pair
// with [DialOptions].
func Target(hostport string) string { return "passthrough:///" + hostport }
