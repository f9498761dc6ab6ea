// Package labnet runs a whole tailnet inside one process — a coordination
// server (tailscale's testcontrol), a DERP relay and a STUN server — for the
// panther lab and for integration tests.
//
// It is not a control plane for real fleets: every node that asks joins,
// with the tags it asks for, and state lives in memory only. Nodes reach it
// without an auth key at Net.ControlURL.
package labnet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
)

// DefaultMagicDNSDomain is the default Options.MagicDNSDomain.
const DefaultMagicDNSDomain = "panther-lab.ts.net"

// Options configure a lab tailnet.
type Options struct {
	// Addr is the IPv4 address DERP and STUN listen on, and that control,
	// DERP and STUN advertise to nodes. Nodes in another network namespace
	// need an address of one of the machine's own interfaces (see
	// HostAddr). Default "127.0.0.1".
	Addr string
	// ControlListen is the host:port the coordination server listens on.
	// Default Addr with a free port.
	ControlListen string
	// TagOwners lists the tags nodes may carry (keys) and which tags may
	// grant them (values), as in a tailnet policy. Nodes get the tags they
	// ask for when they first register. Default: an empty policy, which
	// still grants requested tags at registration.
	TagOwners map[string][]string
	// MagicDNSDomain is the DNS suffix of the tailnet's nodes. Default
	// DefaultMagicDNSDomain.
	MagicDNSDomain string
	// Logf receives the logs of control, DERP and STUN. Default: discarded.
	Logf logger.Logf
}

// Net is a running tailnet. Close stops it.
type Net struct {
	// ControlURL is the coordination server URL nodes log in to.
	ControlURL string
	// Addr is the address control, DERP and STUN are reached on.
	Addr string
	// Control is the coordination server, for callers that inspect nodes.
	Control *testcontrol.Server
	// DERPMap is the tailnet's single-region relay map.
	DERPMap *tailcfg.DERPMap

	derp    *derpserver.Server
	servers []*http.Server
	stun    net.PacketConn
	wg      sync.WaitGroup // serving goroutines
	logf    logger.Logf

	closeOnce sync.Once
	closeErr  error
}

// Start starts DERP, STUN and the coordination server and returns the
// tailnet they form. ctx bounds only the start. Close releases everything.
func Start(ctx context.Context, opts Options) (_ *Net, err error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1"
	}
	ip, perr := netip.ParseAddr(opts.Addr)
	if perr != nil || !ip.Is4() {
		return nil, fmt.Errorf("labnet: Addr %q is not an IPv4 address", opts.Addr)
	}
	if opts.ControlListen == "" {
		opts.ControlListen = net.JoinHostPort(opts.Addr, "0")
	}
	if opts.MagicDNSDomain == "" {
		opts.MagicDNSDomain = DefaultMagicDNSDomain
	}
	if opts.TagOwners == nil {
		opts.TagOwners = map[string][]string{}
	}
	if opts.Logf == nil {
		opts.Logf = logger.Discard
	}
	n := &Net{Addr: opts.Addr, logf: opts.Logf}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	var lc net.ListenConfig

	// DERP over TLS with a certificate made for this run; nodes pin its
	// hash through the DERP map, so nothing skips verification.
	cert, certHash, err := selfSignedCert(ip)
	if err != nil {
		return nil, fmt.Errorf("labnet: DERP certificate: %w", err)
	}
	derpLn, err := lc.Listen(ctx, "tcp4", net.JoinHostPort(opts.Addr, "0"))
	if err != nil {
		return nil, fmt.Errorf("labnet: listening for DERP: %w", err)
	}
	n.derp = derpserver.New(key.NewNode(), opts.Logf)
	derpSrv := &http.Server{
		Handler:           derpserver.Handler(n.derp),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:          logger.StdLogger(opts.Logf),
		ReadHeaderTimeout: 10 * time.Second,
		// DERP upgrades an HTTP/1.1 connection; no HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	n.serve(derpSrv, tls.NewListener(derpLn, derpSrv.TLSConfig), "DERP")

	stunConn, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort(opts.Addr, "0"))
	if err != nil {
		return nil, fmt.Errorf("labnet: listening for STUN: %w", err)
	}
	n.stun = stunConn
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		serveSTUN(stunConn.(*net.UDPConn), opts.Logf)
	}()

	n.DERPMap = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		1: {
			RegionID:   1,
			RegionCode: "lab",
			RegionName: "panther lab",
			Nodes: []*tailcfg.DERPNode{{
				Name:     "1a",
				RegionID: 1,
				HostName: opts.Addr,
				IPv4:     opts.Addr,
				IPv6:     "none",
				STUNPort: stunConn.LocalAddr().(*net.UDPAddr).Port,
				DERPPort: derpLn.Addr().(*net.TCPAddr).Port,
				CertName: "sha256-raw:" + certHash,
			}},
		},
	}}

	controlLn, err := lc.Listen(ctx, "tcp4", opts.ControlListen)
	if err != nil {
		return nil, fmt.Errorf("labnet: listening for control: %w", err)
	}
	port := strconv.Itoa(controlLn.Addr().(*net.TCPAddr).Port)
	n.ControlURL = "http://" + net.JoinHostPort(opts.Addr, port)
	n.Control = &testcontrol.Server{
		DERPMap:         n.DERPMap,
		DNSConfig:       &tailcfg.DNSConfig{Proxied: true},
		MagicDNSDomain:  opts.MagicDNSDomain,
		TagOwners:       opts.TagOwners,
		AllOnline:       true,
		Logf:            opts.Logf,
		ExplicitBaseURL: n.ControlURL,
	}
	n.serve(&http.Server{
		Handler:           n.Control,
		ErrorLog:          logger.StdLogger(opts.Logf),
		ReadHeaderTimeout: 10 * time.Second,
	}, controlLn, "control")
	opts.Logf("labnet: control %s, DERP %s, STUN %s", n.ControlURL, derpLn.Addr(), stunConn.LocalAddr())
	return n, nil
}

// serve runs srv on ln until Close.
func (n *Net) serve(srv *http.Server, ln net.Listener, what string) {
	n.servers = append(n.servers, srv)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logf("labnet: %s stopped: %v", what, err)
		}
	}()
}

// Close stops control, DERP and STUN and waits for their goroutines. Nodes
// still connected lose the tailnet. Close is idempotent.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		for _, srv := range n.servers {
			// Close, not Shutdown: DERP and map polls are long-lived
			// hijacked or streaming connections.
			if err := srv.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.derp != nil {
			if err := n.derp.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.stun != nil {
			if err := n.stun.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// serveSTUN answers STUN binding requests on pc until it is closed.
func serveSTUN(pc *net.UDPConn, logf logger.Logf) {
	buf := make([]byte, 64<<10)
	for {
		nr, src, err := pc.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		pkt := buf[:nr]
		if !stun.Is(pkt) {
			continue
		}
		txid, err := stun.ParseBindingRequest(pkt)
		if err != nil {
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if _, err := pc.WriteToUDPAddrPort(stun.Response(txid, src), src); err != nil {
			logf("labnet: STUN reply to %v: %v", src, err)
		}
	}
}

// selfSignedCert makes a short-lived certificate for ip and returns it with
// the hex SHA-256 of its DER encoding.
func selfSignedCert(ip netip.Addr) (tls.Certificate, string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: ip.String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, fmt.Sprintf("%x", sum), nil
}

// HostAddr returns an IPv4 address of one of the machine's own up,
// non-loopback interfaces: the address a process in another network
// namespace can reach this one on.
func HostAddr() (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && !ip4.IsLinkLocalUnicast() {
				return ip4, nil
			}
		}
	}
	return nil, errors.New("no up, non-loopback interface with an IPv4 address")
}
