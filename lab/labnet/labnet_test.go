package labnet

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/net/stun"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func start(t *testing.T) *Net {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func TestStartRejectsBadAddr(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{name: "hostname", addr: "localhost"},
		{name: "ipv6", addr: "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Start(t.Context(), Options{Addr: tc.addr}); err == nil {
				t.Errorf("Start with Addr %q succeeded", tc.addr)
			}
		})
	}
}

func TestSTUNAnswersWithTheSourceAddress(t *testing.T) {
	n := start(t)
	node := n.DERPMap.Regions[1].Nodes[0]
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(node.IPv4), Port: node.STUNPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	txid := stun.NewTxID()
	if _, err := conn.Write(stun.Request(txid)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	nr, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got, addr, err := stun.ParseResponse(buf[:nr])
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if got != txid || addr != netip.AddrPortFrom(local.Addr().Unmap(), local.Port()) {
		t.Errorf("STUN response txid %x addr %v, want %x %v", got, addr, txid, local)
	}
}

// TestDERPRelaysWithPinnedCert connects two DERP clients through the DERP
// map (TLS verified against the pinned hash) and relays a packet; a wrong
// pin must fail.
func TestDERPRelaysWithPinnedCert(t *testing.T) {
	n := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	region := n.DERPMap.Regions[1]
	connect := func(r *tailcfg.DERPRegion) (*derphttp.Client, key.NodePrivate, error) {
		k := key.NewNode()
		c := derphttp.NewRegionClient(k, t.Logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return r })
		t.Cleanup(func() { c.Close() })
		return c, k, c.Connect(ctx)
	}
	a, _, err := connect(region)
	if err != nil {
		t.Fatalf("client a: %v", err)
	}
	b, bk, err := connect(region)
	if err != nil {
		t.Fatalf("client b: %v", err)
	}
	// b may not be registered with the server yet when Connect returns: a
	// packet to an unknown peer is dropped, so send until one arrives.
	got := make(chan string, 1)
	go func() { // ends when b is closed by the cleanup
		for {
			m, err := b.Recv()
			if err != nil {
				return
			}
			if p, ok := m.(derp.ReceivedPacket); ok {
				got <- string(p.Data)
				return
			}
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
relay:
	for {
		if err := a.Send(bk.Public(), []byte("hello lab")); err != nil {
			t.Fatal(err)
		}
		select {
		case data := <-got:
			if data != "hello lab" {
				t.Errorf("relayed %q", data)
			}
			break relay
		case <-ctx.Done():
			t.Fatal("no packet relayed")
		case <-tick.C:
		}
	}

	bad := region.Clone()
	bad.Nodes[0].CertName = "sha256-raw:" + strings.Repeat("00", 32)
	if _, _, err := connect(bad); err == nil {
		t.Error("a client pinning another certificate connected")
	}
}

func TestControlServes(t *testing.T) {
	n := start(t)
	resp, err := http.Get(n.ControlURL + "/key?v=100")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /key: %s", resp.Status)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.ControlURL + "/key?v=100"); err == nil {
		t.Error("control still answers after Close")
	}
}
