package tailnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"tailscale.com/feature/buildfeatures"
	"tailscale.com/tsnet"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/tailnettest"
)

const (
	agentTag      = "tag:panther-agent"
	controllerTag = "tag:panther-controller"
)

func TestGRPCAuthorizationOverTailnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := tailnettest.New(t, tailnettest.Options{})
	agent := tn.Node(t, "agent", agentTag)
	ctl := tn.Node(t, "ctl", controllerTag)
	alice := tn.Node(t, "alice")
	mallory := tn.Node(t, "mallory")

	// The login name testcontrol gave alice, as the agent sees it.
	aliceIP, _ := alice.TailscaleIPs()
	var aliceID tailnet.Identity
	waitFor(t, 10*time.Second, "agent to know alice", func() bool {
		id, err := agent.WhoIs(ctx, aliceIP.String())
		aliceID = id
		return err == nil
	})
	if aliceID.LoginName == "" || aliceID.Tagged() {
		t.Fatalf("alice identity = %+v, want an untagged node with a login", aliceID)
	}
	if _, err := agent.WhoIs(ctx, "100.127.1.1:4"); !errors.Is(err, tailnet.ErrUnknownPeer) {
		t.Fatalf("WhoIs of a stranger: %v, want ErrUnknownPeer", err)
	}

	var audit logBuffer
	hs := serve(t, agent, serveOptions{
		authz: tailnet.AuthorizerConfig{
			AllowedTags:  []string{controllerTag},
			AllowedUsers: []string{aliceID.LoginName},
		},
		keepalive: true,
		log:       bufferLogger(&audit),
	})

	tests := []struct {
		name      string
		from      *tailnet.Node
		wantCode  codes.Code
		wantID    string // NodeName the server sees
		wantInMsg []string
	}{
		{name: "controller tag allowed", from: ctl, wantCode: codes.OK, wantID: "ctl." + tailnettest.MagicDNSDomain},
		{name: "allowed user", from: alice, wantCode: codes.OK, wantID: "alice." + tailnettest.MagicDNSDomain},
		{
			name: "untagged stranger denied", from: mallory, wantCode: codes.PermissionDenied,
			wantInMsg: []string{"mallory." + tailnettest.MagicDNSDomain, "requires one of tags " + controllerTag, aliceID.LoginName},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(hs.identities())
			err := check(ctx, client(t, tt.from, "agent"))
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("Check: code %v (%v), want %v", got, err, tt.wantCode)
			}
			for _, want := range tt.wantInMsg {
				if msg := status.Convert(err).Message(); !strings.Contains(msg, want) {
					t.Errorf("denial %q lacks %q", msg, want)
				}
			}
			ids := hs.identities()
			if tt.wantCode != codes.OK {
				if len(ids) != before {
					t.Errorf("handler ran for a denied call: %+v", ids[before:])
				}
				return
			}
			if len(ids) != before+1 || ids[before].NodeName != tt.wantID {
				t.Fatalf("identities seen by handler = %+v, want one %s", ids[before:], tt.wantID)
			}
			fromIP, _ := tt.from.TailscaleIPs()
			if ids[before].Addr != fromIP {
				t.Errorf("identity addr = %v, want %v", ids[before].Addr, fromIP)
			}
		})
	}

	t.Run("stream carries identity", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		stream, err := client(t, ctl, "agent").Watch(sctx, nil)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("Watch Recv: %v", err)
		}
		ids := hs.identities()
		if got := ids[len(ids)-1]; !slices.Equal(got.Tags, []string{controllerTag}) {
			t.Errorf("stream identity = %+v, want tags [%s]", got, controllerTag)
		}
	})

	log := audit.String()
	for _, want := range []string{
		"[INFO]  authz: rpc: method=/grpc.health.v1.Health/Check peer=ctl." + tailnettest.MagicDNSDomain,
		"tags=" + controllerTag,
		"login=" + aliceID.LoginName,
		"[WARN]  authz: rpc denied: method=/grpc.health.v1.Health/Check peer=mallory." + tailnettest.MagicDNSDomain,
		"method=/grpc.health.v1.Health/Watch peer=ctl.",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q:\n%s", want, log)
		}
	}
}

// TestListenOpensNoHostSocket proves a tailnet listener exists only inside
// tsnet's netstack: no listening socket appears on the host and the port
// refuses connections on loopback and on the machine's own address.
func TestListenOpensNoHostSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := tailnettest.New(t, tailnettest.Options{})
	agent := tn.Node(t, "agent", agentTag)
	ctl := tn.Node(t, "ctl", controllerTag)

	// A port nobody on the host listens on right now.
	probe, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()

	before := hostListeners(t)
	ln, err := agent.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // owned by ln: ends when the test closes it
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello over the tailnet\n")
			c.Close()
		}
	}()

	// It works on the tailnet...
	c, err := ctl.Dial(ctx, "tcp", fmt.Sprintf("agent:%d", port))
	if err != nil {
		t.Fatalf("tailnet dial: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello over the tailnet\n" {
		t.Fatalf("tailnet read %q", got)
	}

	// ...and nowhere else.
	after := hostListeners(t)
	if added := after.ours.Difference(before.ours); len(added) > 0 {
		t.Errorf("Listen added host listening sockets owned by this process: %v", added)
	}
	if slices.Contains(after.ports, port) {
		t.Errorf("a host socket listens on tailnet port %d", port)
	}
	targets := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if ip, err := tailnettest.HostAddr(); err == nil {
		targets = append(targets, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	}
	for _, target := range targets {
		c, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("dialing %s on the host succeeded; want connection refused", target)
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dialing %s: %v, want connection refused", target, err)
		}
	}
}

// TestNodeOpensNoHostSocket: a whole node — not only its listeners — adds
// no listening socket on the host. tsnet's PeerAPI server would (it
// listens on a kernel socket on all interfaces in netstack mode), so
// panther builds with the ts_omit_peerapiserver tag.
func TestNodeOpensNoHostSocket(t *testing.T) {
	if buildfeatures.HasPeerAPIServer {
		t.Skip("needs -tags ts_omit_peerapiserver: without it tsnet's PeerAPI server listens on a host TCP port on all interfaces")
	}
	tn := tailnettest.New(t, tailnettest.Options{})
	before := hostListeners(t) // control, DERP and STUN of the test tailnet are already up
	agent := tn.Node(t, "agent", agentTag)
	ln, err := agent.Listen("tcp", fmt.Sprintf(":%d", rpcPort))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	after := hostListeners(t)
	if added := after.ours.Difference(before.ours); len(added) > 0 {
		t.Fatalf("the node added host listening sockets (inodes %v); host ports now %v, before %v", added, after.ports, before.ports)
	}
}

// listeners is a snapshot of the host's listening TCP sockets.
type listeners struct {
	ports []int         // local ports of all listening sockets in the netns
	ours  setOf[string] // inodes of listening sockets this process holds
}

type setOf[T comparable] map[T]struct{}

func (s setOf[T]) Difference(o setOf[T]) []T {
	var d []T
	for k := range s {
		if _, ok := o[k]; !ok {
			d = append(d, k)
		}
	}
	return d
}

// hostListeners reads /proc/net/tcp{,6} and this process's fds.
func hostListeners(t *testing.T) listeners {
	t.Helper()
	mine := setOf[string]{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("needs /proc to inspect sockets: %v", err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = struct{}{}
		}
	}
	l := listeners{ours: setOf[string]{}}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			p, err := strconv.ParseInt(hexPort, 16, 32)
			if err != nil {
				t.Fatalf("parsing %s line %q: %v", file, line, err)
			}
			l.ports = append(l.ports, int(p))
			if _, ok := mine[f[9]]; ok {
				l.ours[f[9]] = struct{}{}
			}
		}
	}
	return l
}

// TestServerNoticesClosedClient: when a client's node vanishes mid-stream
// (no FIN, as when its process is killed), keepalive ends the server's
// stream context within 5 s; without keepalive the server would not
// notice. A Node that is closed (not killed) ends its connections
// politely, which the server notices at once.
func TestServerNoticesClosedClient(t *testing.T) {
	tests := []struct {
		name       string
		keepalive  bool
		vanish     bool          // the client is a bare tsnet.Server whose Close sends nothing
		wantWithin time.Duration // 0: want it not noticed within notNoticed
	}{
		{name: "vanished, with keepalive", keepalive: true, vanish: true, wantWithin: 5 * time.Second},
		{name: "vanished, without keepalive", vanish: true},
		{name: "closed node", wantWithin: time.Second},
	}
	const notNoticed = 6 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantWithin == 0 && testing.Short() {
				t.Skip("control case takes 6 s; skipped in -short")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tn := tailnettest.New(t, tailnettest.Options{})
			agent := tn.Node(t, "agent", agentTag)
			hs := serve(t, agent, serveOptions{
				authz:     tailnet.AuthorizerConfig{AllowedTags: []string{controllerTag}},
				keepalive: tt.keepalive,
			})

			var (
				d     tailnet.Dialer
				close func() error
			)
			if tt.vanish {
				bare := &tsnet.Server{
					Dir:           filepath.Join(t.TempDir(), "leaver"),
					Hostname:      "leaver",
					ControlURL:    tn.ControlURL,
					AdvertiseTags: []string{controllerTag},
					UserLogf:      func(string, ...any) {},
				}
				if _, err := bare.Up(ctx); err != nil {
					t.Fatalf("leaver up: %v", err)
				}
				d, close = bare, bare.Close
			} else {
				n := tn.Node(t, "leaver", controllerTag)
				d, close = n, n.Close
			}

			stream, err := client(t, d, "agent."+tailnettest.MagicDNSDomain).Watch(ctx, nil)
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatalf("Watch Recv: %v", err)
			}
			<-hs.watching

			closed := time.Now()
			if err := close(); err != nil {
				t.Fatalf("closing client node: %v", err)
			}
			limit := tt.wantWithin
			if limit == 0 {
				limit = notNoticed
			}
			select {
			case end := <-hs.watchEnd:
				took := end.Sub(closed)
				t.Logf("server noticed the gone client after %v", took.Round(time.Millisecond))
				if tt.wantWithin == 0 {
					t.Errorf("server noticed after %v without keepalive; the control case is void", took)
				}
			case <-time.After(limit):
				if tt.wantWithin != 0 {
					t.Fatalf("server stream still open %v after the client node closed", limit)
				}
			}
		})
	}
}

// TestSystemDialer dials through a stand-in for the machine's tailscaled
// (a tsnet node serving its LocalAPI), as `pantherctl --via system` does.
func TestSystemDialer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := tailnettest.New(t, tailnettest.Options{})
	agent := tn.Node(t, "agent", agentTag)
	hs := serve(t, agent, serveOptions{authz: tailnet.AuthorizerConfig{AllowedTags: []string{controllerTag}}})
	lc := tn.SystemTailscaled(t, "laptop", controllerTag)
	d := tailnet.NewSystemDialer(lc, tailnettest.Logger(t))

	if err := check(ctx, client(t, d, "agent")); err != nil {
		t.Fatalf("Check via system tailscaled: %v", err)
	}
	if ids := hs.identities(); len(ids) != 1 || ids[0].NodeName != "laptop."+tailnettest.MagicDNSDomain {
		t.Fatalf("agent saw %+v, want laptop", ids)
	}
	testDialRefusals(t, d)
}

// TestNodeDialRefusals: a node dials tailnet peers only.
func TestNodeDialRefusals(t *testing.T) {
	tn := tailnettest.New(t, tailnettest.Options{})
	testDialRefusals(t, tn.Node(t, "ctl", controllerTag))
}

func testDialRefusals(t *testing.T, d tailnet.Dialer) {
	t.Helper()
	tests := []struct {
		name string
		addr string
	}{
		{name: "unknown name", addr: "no-such-agent:50051"},
		{name: "address outside the tailnet", addr: "127.0.0.1:50051"},
		{name: "unknown tailnet address", addr: "100.100.100.99:50051"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each waits out the 2 s a new peer gets to appear
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			c, err := d.Dial(ctx, "tcp", tt.addr)
			if err == nil {
				c.Close()
				t.Fatalf("Dial(%s) succeeded, want refusal", tt.addr)
			}
			if !errors.Is(err, tailnet.ErrUnknownPeer) {
				t.Errorf("Dial(%s) = %v, want ErrUnknownPeer", tt.addr, err)
			}
			t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}
