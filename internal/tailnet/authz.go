package tailnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// WhoIser identifies the tailnet peer behind a remote address ("ip:port").
// *[Node] implements it; tests use [RecordingWhoIs].
type WhoIser interface {
	WhoIs(ctx context.Context, remoteAddr string) (Identity, error)
}

var _ WhoIser = (*Node)(nil)

// AuthorizerConfig says which tailnet peers may call.
type AuthorizerConfig struct {
	// AllowedTags admits any peer carrying one of these tags, e.g.
	// "tag:panther-controller". Default: none.
	AllowedTags []string
	// AllowedUsers admits untagged peers owned by one of these login
	// names, e.g. "alice@example.com". Tagged peers are never admitted by
	// user: a tagged node belongs to its tags, not to the user who created
	// it. Default: none.
	AllowedUsers []string
}

// Authorizer admits a gRPC call only if the calling tailnet peer is
// allowed by its config, puts the peer's [Identity] into the call's
// context (see [IdentityFromContext]) and writes one audit log line per
// call.
type Authorizer struct {
	cfg   AuthorizerConfig
	whois WhoIser
	log   hclog.Logger
}

// NewAuthorizer returns an Authorizer that identifies callers with whois.
// A config allowing nobody is refused with [ErrInvalidConfig], since it
// would deny every call.
func NewAuthorizer(cfg AuthorizerConfig, whois WhoIser, log hclog.Logger) (*Authorizer, error) {
	if whois == nil {
		return nil, fmt.Errorf("%w: authorizer needs a WhoIs source", ErrInvalidConfig)
	}
	if len(cfg.AllowedTags) == 0 && len(cfg.AllowedUsers) == 0 {
		return nil, fmt.Errorf("%w: authorizer allows no tags and no users", ErrInvalidConfig)
	}
	for _, tag := range cfg.AllowedTags {
		if !strings.HasPrefix(tag, "tag:") {
			return nil, fmt.Errorf("%w: allowed tag %q lacks the \"tag:\" prefix", ErrInvalidConfig, tag)
		}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg.AllowedTags = slices.Clone(cfg.AllowedTags)
	cfg.AllowedUsers = slices.Clone(cfg.AllowedUsers)
	return &Authorizer{cfg: cfg, whois: whois, log: log.Named("authz")}, nil
}

// Allowed reports whether id may call, and if not, why in words.
func (a *Authorizer) Allowed(id Identity) error {
	if id.Tagged() {
		for _, tag := range id.Tags {
			if slices.Contains(a.cfg.AllowedTags, tag) {
				return nil
			}
		}
	} else if id.LoginName != "" && slices.Contains(a.cfg.AllowedUsers, id.LoginName) {
		return nil
	}
	return fmt.Errorf("%w: %s is not allowed; %s", ErrNotAllowed, id, a.requirement())
}

// requirement describes in words what a caller needs.
func (a *Authorizer) requirement() string {
	var parts []string
	if len(a.cfg.AllowedTags) > 0 {
		parts = append(parts, "one of tags "+strings.Join(a.cfg.AllowedTags, ", "))
	}
	if len(a.cfg.AllowedUsers) > 0 {
		parts = append(parts, "an untagged node of user "+strings.Join(a.cfg.AllowedUsers, ", "))
	}
	return "requires " + strings.Join(parts, " or ")
}

// Authorize identifies the peer of the gRPC call in ctx, checks it and
// returns ctx carrying its [Identity]. Errors are gRPC status errors:
// Unauthenticated if the peer cannot be identified, PermissionDenied if it
// is not allowed; both wrap [ErrUnknownPeer] or [ErrNotAllowed] in their
// message only, so match on the status code.
func (a *Authorizer) Authorize(ctx context.Context, method string) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		a.log.Warn("rpc refused", "method", method, "reason", "no peer address")
		return ctx, status.Error(codes.Unauthenticated, "tailnet: no peer address on the call")
	}
	remote := p.Addr.String()
	id, err := a.whois.WhoIs(ctx, remote)
	if err != nil {
		a.log.Warn("rpc refused", "method", method, "peer_addr", remote, "error", err)
		if errors.Is(err, ErrUnknownPeer) {
			return ctx, status.Errorf(codes.Unauthenticated, "tailnet: caller %s is not a known tailnet peer", remote)
		}
		return ctx, status.Errorf(codes.Unavailable, "tailnet: cannot identify caller %s: %v", remote, err)
	}
	if err := a.Allowed(id); err != nil {
		a.log.Warn("rpc denied", "method", method, "peer", id.NodeName, "login", id.LoginName,
			"tags", strings.Join(id.Tags, ","), "peer_addr", remote)
		return ctx, status.Error(codes.PermissionDenied, err.Error())
	}
	a.log.Info("rpc", "method", method, "peer", id.NodeName, "login", id.LoginName,
		"tags", strings.Join(id.Tags, ","), "peer_addr", remote)
	return withIdentity(ctx, id), nil
}

// UnaryInterceptor authorizes every unary call.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authorizes every streaming call.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

// ServerOptions returns both interceptors as gRPC server options.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
	}
}

// identityStream is a ServerStream whose context carries the identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

type identityKey struct{}

func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the caller identity [Authorizer] stored in
// the context of an admitted call.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
