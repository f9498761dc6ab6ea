package tailnet

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/types/key"
)

func TestPeerIP(t *testing.T) {
	agentIP := netip.MustParseAddr("100.64.0.7")
	agent6 := netip.MustParseAddr("fd7a:115c:a1e0::7")
	st := &ipnstate.Status{Peer: map[key.NodePublic]*ipnstate.PeerStatus{
		key.NewNode().Public(): {HostName: "web01", DNSName: "agent-web01.example.ts.net.", TailscaleIPs: []netip.Addr{agentIP, agent6}},
		key.NewNode().Public(): {HostName: "nodns", TailscaleIPs: []netip.Addr{netip.MustParseAddr("100.64.0.8")}},
		key.NewNode().Public(): {HostName: "noaddr", DNSName: "noaddr.example.ts.net."},
	}}
	tests := []struct {
		name   string
		host   string
		want   netip.Addr
		wantOK bool
	}{
		{name: "short MagicDNS name", host: "agent-web01", want: agentIP, wantOK: true},
		{name: "full MagicDNS name", host: "agent-web01.example.ts.net", want: agentIP, wantOK: true},
		{name: "full name with dot", host: "agent-web01.example.ts.net.", want: agentIP, wantOK: true},
		{name: "case folded", host: "Agent-Web01", want: agentIP, wantOK: true},
		{name: "OS hostname is not the MagicDNS name", host: "web01"},
		{name: "hostname without MagicDNS", host: "nodns", want: netip.MustParseAddr("100.64.0.8"), wantOK: true},
		{name: "peer address", host: "100.64.0.7", want: agentIP, wantOK: true},
		{name: "peer IPv6 address", host: "fd7a:115c:a1e0::7", want: agent6, wantOK: true},
		{name: "address of no peer", host: "100.64.0.9"},
		{name: "peer without addresses", host: "noaddr"},
		{name: "unknown", host: "db01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := peerIP(st, tt.host)
			if ok != tt.wantOK || got != tt.want {
				t.Fatalf("peerIP(%q) = %v, %v; want %v, %v", tt.host, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUDPPortMemory(t *testing.T) {
	tests := []struct {
		name     string
		cfgPort  uint16
		file     string // content of the port file; "" means none
		want     uint16 // port udpPort returns
		bound    uint16 // port tsnet then bound
		wantFile string // file content after rememberPort
	}{
		{name: "first start", want: 0, bound: 41641, wantFile: "41641\n"},
		{name: "restart reuses", file: "41641\n", want: 41641, bound: 41641, wantFile: "41641\n"},
		{name: "taken port replaced", file: "41641\n", want: 41641, bound: 50000, wantFile: "50000\n"},
		{name: "garbage ignored", file: "port?", want: 0, bound: 50001, wantFile: "50001\n"},
		{name: "configured port wins and is not stored", cfgPort: 7000, file: "41641\n", want: 7000, bound: 7000, wantFile: "41641\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, portFile)
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n := &Node{cfg: Config{StateDir: dir, Port: tt.cfgPort}, log: hclog.NewNullLogger()}
			got, err := n.udpPort()
			if err != nil || got != tt.want {
				t.Fatalf("udpPort() = %d, %v; want %d", got, err, tt.want)
			}
			n.rememberPort(got, tt.bound)
			b, _ := os.ReadFile(path)
			if string(b) != tt.wantFile {
				t.Fatalf("port file = %q, want %q", b, tt.wantFile)
			}
		})
	}
}

// tcpPair returns a connected TCP pair on loopback.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // ends with the Accept
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestLingerFinishesCloseHandshake(t *testing.T) {
	l := newLingerer()
	client, server := tcpPair(t)
	c := l.track(client)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The peer sees our FIN at once...
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("peer read after Close = %v, want EOF", err)
	}
	// ...and once it closes too, shutdown does not wait for lingerTimeout.
	server.Close()
	start := time.Now()
	l.shutdown()
	if d := time.Since(start); d > lingerTimeout/2 {
		t.Fatalf("shutdown took %v after the peer closed", d)
	}
}

func TestLingerShutdownIsBounded(t *testing.T) {
	l := newLingerer()
	client, _ := tcpPair(t) // the peer never closes
	l.track(client)         // and we never Close: shutdown must
	start := time.Now()
	l.shutdown()
	if d := time.Since(start); d < lingerTimeout/2 || d > 3*lingerTimeout {
		t.Fatalf("shutdown took %v, want about lingerTimeout (%v)", d, lingerTimeout)
	}
	if _, err := client.Write([]byte("x")); err == nil {
		t.Fatal("connection still writable after shutdown")
	}
	// A connection tracked after shutdown is closed at once.
	late, _ := tcpPair(t)
	if c := l.track(late); c != late {
		t.Fatal("track after shutdown wrapped the connection")
	}
}
