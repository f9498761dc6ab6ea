package tailnet

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

var (
	ctlID = Identity{
		LoginName: "tagged-devices",
		Tags:      []string{"tag:panther-controller"},
		NodeName:  "laptop.example.ts.net",
		Addr:      netip.MustParseAddr("100.64.0.1"),
	}
	aliceID = Identity{
		LoginName: "alice@example.com",
		NodeName:  "alice-laptop.example.ts.net",
		Addr:      netip.MustParseAddr("100.64.0.2"),
	}
	bobID = Identity{
		LoginName: "bob@example.com",
		NodeName:  "bob-laptop.example.ts.net",
		Addr:      netip.MustParseAddr("100.64.0.3"),
	}
	// taggedAliceID is a node alice tagged as a web server: tags win.
	taggedAliceID = Identity{
		LoginName: "alice@example.com",
		Tags:      []string{"tag:web"},
		NodeName:  "web.example.ts.net",
		Addr:      netip.MustParseAddr("100.64.0.4"),
	}
	strangerAddr = netip.MustParseAddr("100.64.0.99")
)

// syncBuffer is a log sink safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestAuthorizer(t *testing.T, cfg AuthorizerConfig, whois WhoIser) (*Authorizer, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	a, err := NewAuthorizer(cfg, whois, log)
	if err != nil {
		t.Fatalf("NewAuthorizer: %v", err)
	}
	return a, &logs
}

func peerCtx(addr netip.Addr) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{
		Addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 41641)),
	})
}

func TestNewAuthorizerRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   AuthorizerConfig
		whois WhoIser
	}{
		{name: "allows nobody", cfg: AuthorizerConfig{}, whois: NewRecordingWhoIs()},
		{name: "no whois", cfg: AuthorizerConfig{AllowedTags: []string{"tag:x"}}},
		{name: "tag without prefix", cfg: AuthorizerConfig{AllowedTags: []string{"panther"}}, whois: NewRecordingWhoIs()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAuthorizer(tt.cfg, tt.whois, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewAuthorizer error = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	cfg := AuthorizerConfig{
		AllowedTags:  []string{"tag:panther-controller"},
		AllowedUsers: []string{"alice@example.com"},
	}
	tests := []struct {
		name      string
		addr      netip.Addr
		whoisErr  error
		wantCode  codes.Code
		wantInMsg []string
		wantLog   string
	}{
		{name: "allowed tag", addr: ctlID.Addr, wantCode: codes.OK, wantLog: "peer=laptop.example.ts.net"},
		{name: "allowed user", addr: aliceID.Addr, wantCode: codes.OK, wantLog: "login=alice@example.com"},
		{
			name: "other user", addr: bobID.Addr, wantCode: codes.PermissionDenied,
			wantInMsg: []string{"bob-laptop.example.ts.net", "bob@example.com", "tag:panther-controller", "alice@example.com"},
			wantLog:   "rpc denied",
		},
		{
			name: "tagged node of allowed user", addr: taggedAliceID.Addr, wantCode: codes.PermissionDenied,
			wantInMsg: []string{"web.example.ts.net", "tag:web", "requires one of tags tag:panther-controller"},
			wantLog:   "rpc denied",
		},
		{
			name: "unknown peer", addr: strangerAddr, wantCode: codes.Unauthenticated,
			wantInMsg: []string{"100.64.0.99", "not a known tailnet peer"},
			wantLog:   "rpc refused",
		},
		{
			name: "whois fails", addr: ctlID.Addr, whoisErr: errors.New("localapi down"), wantCode: codes.Unavailable,
			wantInMsg: []string{"localapi down"},
			wantLog:   "rpc refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whois := NewRecordingWhoIs(ctlID, aliceID, bobID, taggedAliceID)
			whois.FailWith(tt.whoisErr)
			a, logs := newTestAuthorizer(t, cfg, whois)

			var handled bool
			var gotID Identity
			handler := func(ctx context.Context, req any) (any, error) {
				handled = true
				gotID, _ = IdentityFromContext(ctx)
				return "ok", nil
			}
			info := &grpc.UnaryServerInfo{FullMethod: "/panther.agent.v1.Agent/Deploy"}
			_, err := a.UnaryInterceptor()(peerCtx(tt.addr), "req", info, handler)

			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			for _, want := range tt.wantInMsg {
				if !strings.Contains(status.Convert(err).Message(), want) {
					t.Errorf("message %q lacks %q", status.Convert(err).Message(), want)
				}
			}
			if handled != (tt.wantCode == codes.OK) {
				t.Errorf("handler called = %v, want %v", handled, tt.wantCode == codes.OK)
			}
			if tt.wantCode == codes.OK && gotID.Addr != tt.addr {
				t.Errorf("identity in context = %+v, want addr %v", gotID, tt.addr)
			}
			if calls := whois.Calls(); len(calls) != 1 || calls[0] != tt.addr.String()+":41641" {
				t.Errorf("whois calls = %v, want one for %v:41641", calls, tt.addr)
			}
			log := logs.String()
			if !strings.Contains(log, tt.wantLog) || !strings.Contains(log, "method=/panther.agent.v1.Agent/Deploy") {
				t.Errorf("audit log %q lacks %q and the method", log, tt.wantLog)
			}
		})
	}
}

func TestAuthorizeWithoutPeer(t *testing.T) {
	a, _ := newTestAuthorizer(t, AuthorizerConfig{AllowedTags: []string{"tag:x"}}, NewRecordingWhoIs())
	_, err := a.Authorize(context.Background(), "/x/Y")
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("code = %v, want Unauthenticated", status.Code(err))
	}
}

type fakeServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeServerStream) Context() context.Context { return s.ctx }

func TestStreamInterceptor(t *testing.T) {
	tests := []struct {
		name     string
		addr     netip.Addr
		wantCode codes.Code
	}{
		{name: "allowed", addr: ctlID.Addr, wantCode: codes.OK},
		{name: "denied", addr: bobID.Addr, wantCode: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, logs := newTestAuthorizer(t, AuthorizerConfig{AllowedTags: []string{"tag:panther-controller"}},
				NewRecordingWhoIs(ctlID, bobID))
			var gotID Identity
			handler := func(srv any, ss grpc.ServerStream) error {
				gotID, _ = IdentityFromContext(ss.Context())
				return nil
			}
			info := &grpc.StreamServerInfo{FullMethod: "/panther.agent.v1.Agent/Watch", IsServerStream: true}
			err := a.StreamInterceptor()(nil, fakeServerStream{ctx: peerCtx(tt.addr)}, info, handler)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if tt.wantCode == codes.OK && gotID.NodeName != ctlID.NodeName {
				t.Errorf("identity in stream context = %+v, want %s", gotID, ctlID.NodeName)
			}
			if !strings.Contains(logs.String(), "method=/panther.agent.v1.Agent/Watch") {
				t.Errorf("no audit line for the stream: %q", logs.String())
			}
		})
	}
}

func TestIdentityFromContextEmpty(t *testing.T) {
	if id, ok := IdentityFromContext(context.Background()); ok {
		t.Fatalf("IdentityFromContext on a bare context = %+v, true", id)
	}
}
