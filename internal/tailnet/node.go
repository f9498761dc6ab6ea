package tailnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"tailscale.com/client/local"
	"tailscale.com/envknob"
	"tailscale.com/feature/buildfeatures"
	"tailscale.com/tsnet"
)

// Config describes one tsnet node.
type Config struct {
	// Hostname is the node's name on the tailnet. Required; no default.
	Hostname string

	// StateDir holds the node's persisted identity (tailscaled.state) and
	// its last UDP port. Required; no default. It is created with mode
	// 0700 if missing. See [DefaultStateDir] for a per-user location.
	StateDir string

	// ControlURL is the coordination server. Default: empty, which means
	// Tailscale's own control plane. Any Headscale URL works.
	ControlURL string

	// AuthKeyFile is a file holding an auth key used on first login;
	// surrounding whitespace is trimmed. Default: empty, no auth key (the
	// node logs a login URL, or reuses the identity in StateDir).
	AuthKeyFile string

	// Tags are the ACL tags the node advertises, e.g. "tag:panther-agent".
	// Default: none.
	Tags []string

	// Ephemeral registers the node as ephemeral: control removes it soon
	// after it goes offline. Default: false.
	Ephemeral bool

	// NoLogsNoSupport disables tsnet's upload of its logs to Tailscale.
	// tsnet reads this only from the TS_NO_LOGS_NO_SUPPORT environment
	// variable, so setting it is process-wide: once any node of the process
	// sets it, it stays on for every node of the process. Default: false.
	NoLogsNoSupport bool

	// Port is the UDP port for WireGuard and peer-to-peer traffic; set it
	// to open a fixed port in a host firewall. Default: 0, which reuses
	// the port remembered in StateDir from the previous start (so peers'
	// cached direct paths reach the restarted node at once, see portFile)
	// or, on the first start or if that port is taken, any free port.
	Port uint16
}

// Identity is who a tailnet peer is, as told by the node's netmap.
type Identity struct {
	// LoginName is the login of the user owning the peer, e.g.
	// alice@example.com. For tagged peers Tailscale reports a placeholder
	// such as "tagged-devices"; authorize those by Tags.
	LoginName string
	// Tags are the peer's ACL tags, e.g. "tag:panther-controller".
	Tags []string
	// NodeName is the peer's MagicDNS name without the trailing dot, or its
	// hostname when the tailnet has no MagicDNS.
	NodeName string
	// Addr is the peer's tailnet address the call came from.
	Addr netip.Addr
}

// Tagged reports whether the identity carries at least one tag.
func (id Identity) Tagged() bool { return len(id.Tags) > 0 }

// String names the peer for log and error messages.
func (id Identity) String() string {
	who := id.NodeName
	if who == "" {
		who = id.Addr.String()
	}
	if id.Tagged() {
		return fmt.Sprintf("%s (tags %s)", who, strings.Join(id.Tags, ","))
	}
	return fmt.Sprintf("%s (user %s)", who, id.LoginName)
}

// Node is one embedded tsnet node. Its zero value is not usable; build it
// with [New]. All methods are safe for concurrent use; Close ends it.
type Node struct {
	cfg Config
	log hclog.Logger
	srv *tsnet.Server

	mu      sync.Mutex // guards started and closed; held across tsnet Start
	started bool
	ready   bool // Up succeeded
	closed  bool
	lc      *local.Client

	conns *lingerer // dialed connections, closed gracefully
	peers *peerGate // peers that proved they know this node's disco key
}

// New checks cfg and prepares a node; it does not touch the network.
// Call [Node.Up] to join the tailnet. tsnet's verbose backend logs go to
// log at trace level, its user-facing messages (login URLs, state path)
// at info level.
func New(cfg Config, log hclog.Logger) (*Node, error) {
	if cfg.Hostname == "" {
		return nil, fmt.Errorf("%w: Hostname is required", ErrInvalidConfig)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("%w: StateDir is required", ErrInvalidConfig)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("tailnet").With("node", cfg.Hostname)

	var authKey string
	if cfg.AuthKeyFile != "" {
		b, err := os.ReadFile(cfg.AuthKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: reading auth key: %w", ErrInvalidConfig, err)
		}
		authKey = strings.TrimSpace(string(b))
		if authKey == "" {
			return nil, fmt.Errorf("%w: auth key file %s is empty", ErrInvalidConfig, cfg.AuthKeyFile)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: state dir: %w", ErrInvalidConfig, err)
	}

	if buildfeatures.HasPeerAPIServer {
		log.Warn("built without the ts_omit_peerapiserver tag: tsnet's PeerAPI server will listen on a TCP port on all host interfaces, not only on the tailnet")
	}
	n := &Node{cfg: cfg, log: log, conns: newLingerer(), peers: newPeerGate()}
	n.srv = &tsnet.Server{
		Dir:           cfg.StateDir,
		Hostname:      cfg.Hostname,
		ControlURL:    cfg.ControlURL,
		AuthKey:       authKey,
		AdvertiseTags: append([]string(nil), cfg.Tags...),
		Ephemeral:     cfg.Ephemeral,
		Logf:          n.backendLogf,
		UserLogf:      n.userLogf,
	}
	return n, nil
}

func (n *Node) backendLogf(format string, args ...any) {
	if !n.log.IsTrace() {
		return
	}
	n.log.Trace(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (n *Node) userLogf(format string, args ...any) {
	n.log.Info(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// start starts tsnet once; it does not wait for the node to be running.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("%w: closed", ErrNotRunning)
	}
	if n.started {
		return nil
	}
	if n.cfg.NoLogsNoSupport {
		envknob.SetNoLogsNoSupport()
	}
	port, err := n.udpPort()
	if err != nil {
		return err
	}
	n.srv.Port = port
	if err := n.srv.Start(); err != nil {
		return fmt.Errorf("starting tsnet: %w", err)
	}
	lc, err := n.srv.LocalClient()
	if err != nil {
		return fmt.Errorf("tsnet local client: %w", err)
	}
	n.lc = lc
	n.started = true
	bound := n.srv.Sys().MagicSock.Get().LocalPort()
	n.rememberPort(port, bound)
	n.log.Debug("started", "state_dir", n.cfg.StateDir, "udp_port", bound)
	return nil
}

// Up joins the tailnet and waits until the node is ready or ctx ends.
// Ready means running with its tailnet addresses, in a live map poll with
// control (not merely running from a netmap cached on disk) and, for at
// most homeDERPWait, connected to its home DERP relay. Up is idempotent;
// Dial calls it.
func (n *Node) Up(ctx context.Context) error {
	if err := n.start(); err != nil {
		return err
	}
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	if ready {
		return nil
	}
	st, err := n.srv.Up(ctx)
	if err != nil {
		return fmt.Errorf("waiting for tailnet: %w", err)
	}
	if err := n.waitControl(ctx); err != nil {
		return err
	}
	n.waitHomeDERP(ctx)
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.log.Info("up", "addrs", fmt.Sprint(st.TailscaleIPs))
	return nil
}

// Listen listens on the node's tailnet addresses only; no socket is opened
// on any host interface. addr is ":port" or "tailnetIP:port". (The node
// as a whole opens no host listener only in binaries built with the
// ts_omit_peerapiserver tag; New warns otherwise.)
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	if err := n.start(); err != nil {
		return nil, err
	}
	ln, err := n.srv.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("tailnet listen %s %s: %w", network, addr, err)
	}
	return ln, nil
}

// Dial connects to addr over the tailnet, bringing the node up first.
// addr is "host:port" where host is a peer's MagicDNS name (short or
// full), or a tailnet IP; names are looked up in the netmap only, never
// in DNS, and an unknown peer is [ErrUnknownPeer]. Closing the
// connection sends FIN at once and finishes the TCP close handshake in the
// background; [Node.Close] waits for that (see lingerTimeout).
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := n.Up(ctx); err != nil {
		return nil, err
	}
	target, err := resolvePeer(ctx, n.lc, addr)
	if err != nil {
		return nil, fmt.Errorf("tailnet dial %s: %w", addr, err)
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		if !n.peers.await(ctx, n.lc, ap.Addr()) {
			n.log.Debug("peer did not answer disco ping; dialing anyway", "addr", addr)
		}
	}
	c, err := n.srv.Dial(ctx, network, target)
	if err != nil {
		return nil, fmt.Errorf("tailnet dial %s %s: %w", network, addr, err)
	}
	return n.conns.track(c), nil
}

// WhoIs identifies the peer behind remoteAddr ("ip:port" or "ip") from the
// node's netmap. It returns [ErrUnknownPeer] if no peer has that address.
func (n *Node) WhoIs(ctx context.Context, remoteAddr string) (Identity, error) {
	if err := n.start(); err != nil {
		return Identity{}, err
	}
	return whoIsLocal(ctx, n.lc, remoteAddr)
}

// TailscaleIPs returns the node's tailnet IPv4 and IPv6 addresses; they are
// invalid until the node is up.
func (n *Node) TailscaleIPs() (ip4, ip6 netip.Addr) {
	n.mu.Lock()
	started := n.started && !n.closed
	n.mu.Unlock()
	if !started {
		return netip.Addr{}, netip.Addr{}
	}
	return n.srv.TailscaleIPs()
}

// UDPPort returns the UDP port the node bound for WireGuard and disco
// (to open in a host firewall), or 0 before it started.
func (n *Node) UDPPort() uint16 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started || n.closed {
		return 0
	}
	return n.srv.Sys().MagicSock.Get().LocalPort()
}

// Hostname returns the configured tailnet hostname.
func (n *Node) Hostname() string { return n.cfg.Hostname }

// Close leaves the tailnet and releases the node's resources. It first
// closes dialed connections gracefully (waiting at most about a second
// for peers to acknowledge), so peers are not left retransmitting to this
// node. Listeners and connections of the node stop working. Close is
// idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.conns.shutdown()
	if !n.started {
		return nil
	}
	if err := n.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("closing tsnet: %w", err)
	}
	n.log.Debug("closed")
	return nil
}

// whoIsLocal asks a tailscale LocalAPI (tsnet's in-memory one or the
// machine's tailscaled) who remoteAddr is.
func whoIsLocal(ctx context.Context, lc *local.Client, remoteAddr string) (Identity, error) {
	res, err := lc.WhoIs(ctx, remoteAddr)
	if errors.Is(err, local.ErrPeerNotFound) {
		return Identity{}, fmt.Errorf("%w: %s", ErrUnknownPeer, remoteAddr)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("whois %s: %w", remoteAddr, err)
	}
	if res.Node == nil {
		return Identity{}, fmt.Errorf("%w: %s (no node in whois answer)", ErrUnknownPeer, remoteAddr)
	}
	id := Identity{
		Tags:     append([]string(nil), res.Node.Tags...),
		NodeName: strings.TrimSuffix(res.Node.Name, "."),
	}
	if id.NodeName == "" {
		id.NodeName = res.Node.ComputedName
	}
	if res.UserProfile != nil {
		id.LoginName = res.UserProfile.LoginName
	}
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		id.Addr = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(remoteAddr); err == nil {
		id.Addr = a.Unmap()
	}
	return id, nil
}
