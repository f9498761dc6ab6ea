package tailnet

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Default per-peer limits (see [PeerLimits]). pantherctl needs a handful
// of calls at once per host (upload, deploy stream, watch, confirm, status)
// and a few per second; the defaults leave room for several operators
// behind one node and stop a peer from opening thousands of streams.
const (
	DefaultMaxConcurrentStreams = 32
	DefaultMaxCallsPerPeer      = 16
	DefaultCallsPerSecond       = 10
	DefaultCallBurst            = 40
)

// PeerLimits bounds what one tailnet peer may consume on a gRPC server.
// A zero field takes its default; a negative one turns that limit off.
type PeerLimits struct {
	// MaxConcurrentStreams is HTTP/2's limit per connection (gRPC's
	// MaxConcurrentStreams). Default DefaultMaxConcurrentStreams.
	MaxConcurrentStreams int
	// MaxCallsPerPeer is how many calls (unary or streaming) one peer may
	// have open at once, over all its connections. Default
	// DefaultMaxCallsPerPeer.
	MaxCallsPerPeer int
	// CallsPerSecond and CallBurst rate-limit the calls one peer starts: a
	// token bucket of CallBurst tokens refilled at CallsPerSecond. Defaults
	// DefaultCallsPerSecond and DefaultCallBurst.
	CallsPerSecond float64
	CallBurst      int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (l PeerLimits) withDefaults() PeerLimits {
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.MaxCallsPerPeer == 0 {
		l.MaxCallsPerPeer = DefaultMaxCallsPerPeer
	}
	if l.CallsPerSecond == 0 {
		l.CallsPerSecond = DefaultCallsPerSecond
	}
	if l.CallBurst == 0 {
		l.CallBurst = DefaultCallBurst
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// Limiter enforces [PeerLimits] per tailnet peer. A call over a limit is
// refused with codes.ResourceExhausted and a message naming the limit. It
// keys peers by the [Identity] the [Authorizer] put into the context, so
// its interceptors must run after the Authorizer's (see ServerOptions);
// without an identity it falls back to the remote IP address.
type Limiter struct {
	lim PeerLimits
	log hclog.Logger

	mu      sync.Mutex
	peers   map[string]*peerUse
	sweepAt int // sweep idle peers once the map holds this many
}

// peerUse is what one peer has open and its token bucket.
type peerUse struct {
	open   int
	tokens float64
	at     time.Time // when tokens was last refilled
}

// NewLimiter returns a Limiter for lim.
func NewLimiter(lim PeerLimits, log hclog.Logger) *Limiter {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Limiter{lim: lim.withDefaults(), log: log.Named("limits"), peers: map[string]*peerUse{}, sweepAt: 64}
}

// peerKey names the caller of ctx: its node name, else its address.
func peerKey(ctx context.Context) string {
	if id, ok := IdentityFromContext(ctx); ok {
		if id.NodeName != "" {
			return id.NodeName
		}
		if id.Addr.IsValid() {
			return id.Addr.String()
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
			return ap.Addr().String()
		}
		return p.Addr.String()
	}
	return "unknown peer"
}

// acquire admits one call of the peer of ctx, or refuses it with a
// ResourceExhausted status. release must be called when the call ends.
func (l *Limiter) acquire(ctx context.Context, method string) (release func(), err error) {
	key := peerKey(ctx)
	now := l.lim.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.peers[key]
	if u == nil {
		if len(l.peers) >= l.sweepAt {
			l.sweep()
		}
		u = &peerUse{tokens: float64(l.lim.CallBurst), at: now}
		l.peers[key] = u
	}
	if l.lim.CallsPerSecond > 0 {
		u.tokens = min(float64(l.lim.CallBurst), u.tokens+now.Sub(u.at).Seconds()*l.lim.CallsPerSecond)
		u.at = now
	}
	if l.lim.MaxCallsPerPeer > 0 && u.open >= l.lim.MaxCallsPerPeer {
		l.log.Warn("rpc refused", "method", method, "peer", key, "reason", "too many open calls", "limit", l.lim.MaxCallsPerPeer)
		return nil, status.Errorf(codes.ResourceExhausted,
			"tailnet: %s already has %d calls open, the limit per peer (close some: e.g. end 'pantherctl logs --follow')",
			key, u.open)
	}
	if l.lim.CallsPerSecond > 0 {
		if u.tokens < 1 {
			l.log.Warn("rpc refused", "method", method, "peer", key, "reason", "rate limit", "limit", l.lim.CallsPerSecond)
			return nil, status.Errorf(codes.ResourceExhausted,
				"tailnet: %s starts calls faster than the rate limit per peer (%g per second, bursts of %d); retry in a moment",
				key, l.lim.CallsPerSecond, l.lim.CallBurst)
		}
		u.tokens--
	}
	u.open++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		u.open--
		l.forget(key, u)
	}, nil
}

// sweep forgets every idle peer; the next sweep comes when the map has
// doubled, so sweeping costs O(1) per new peer.
func (l *Limiter) sweep() {
	for key, u := range l.peers {
		l.forget(key, u)
	}
	l.sweepAt = max(64, 2*len(l.peers))
}

// forget drops a peer with nothing open and a full bucket, so the map
// holds only peers in use.
func (l *Limiter) forget(key string, u *peerUse) {
	if u.open > 0 {
		return
	}
	full := l.lim.CallsPerSecond <= 0 ||
		u.tokens+l.lim.Now().Sub(u.at).Seconds()*l.lim.CallsPerSecond >= float64(l.lim.CallBurst)
	if full && l.peers[key] == u {
		delete(l.peers, key)
	}
}

// Open reports how many calls the peer named key has open (for tests).
func (l *Limiter) Open(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.peers[key]; u != nil {
		return u.open
	}
	return 0
}

// UnaryInterceptor limits unary calls.
func (l *Limiter) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		release, err := l.acquire(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

// StreamInterceptor limits streaming calls, for as long as they are open.
func (l *Limiter) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := l.acquire(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, ss)
	}
}

// ServerOptions returns the gRPC server options of an authorized and
// limited server: MaxConcurrentStreams, then the Authorizer's
// interceptors, then the Limiter's (which key on the identity the
// Authorizer found).
func ServerOptions(a *Authorizer, l *Limiter) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if n := l.lim.MaxConcurrentStreams; n > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(n)))
	}
	return append(opts,
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor(), l.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor(), l.StreamInterceptor()),
	)
}

// String describes the limits for the agent's start-up log.
func (l PeerLimits) String() string {
	l = l.withDefaults()
	return fmt.Sprintf("%d streams per connection, %d open calls and %g calls/s (burst %d) per peer",
		l.MaxConcurrentStreams, l.MaxCallsPerPeer, l.CallsPerSecond, l.CallBurst)
}
