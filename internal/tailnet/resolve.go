package tailnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"tailscale.com/client/local"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/net/tsaddr"
)

// peerWait bounds how long a dial waits for a peer name to appear in the
// netmap (a peer that registered a moment ago).
const peerWait = 2 * time.Second

// resolvePeer turns addr ("host:port") into "tailnetIP:port" using only the
// netmap of the node behind lc. tsnet and tailscaled fall back to the
// system resolver for names the netmap lacks, which can hang for many
// seconds offline and can connect outside the tailnet; panther only ever
// talks to tailnet peers, so a name or address of no peer is
// [ErrUnknownPeer] (after waiting peerWait for it to appear).
func resolvePeer(ctx context.Context, lc *local.Client, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnknownPeer, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !tsaddr.IsTailscaleIP(ip.Unmap()) {
		return "", fmt.Errorf("%w: %s is not a tailnet address", ErrUnknownPeer, ip)
	}
	wctx, cancel := context.WithTimeout(ctx, peerWait)
	defer cancel()
	for {
		st, err := lc.Status(wctx)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				// The wait for the peer ran out during the status call.
				return "", fmt.Errorf("%w: no peer %q in the netmap", ErrUnknownPeer, host)
			}
			return "", fmt.Errorf("resolving %s in the netmap: %w", host, err)
		}
		if ip, ok := peerIP(st, host); ok {
			return net.JoinHostPort(ip.String(), port), nil
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("%w: no peer %q in the netmap", ErrUnknownPeer, host)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// peerIP finds the peer called host — one of its tailnet addresses, its
// MagicDNS name with or without the tailnet suffix, or its hostname — and
// returns its first address (or the given one).
func peerIP(st *ipnstate.Status, host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	ip, _ := netip.ParseAddr(host)
	for _, p := range st.Peer {
		if len(p.TailscaleIPs) == 0 {
			continue
		}
		if ip.IsValid() {
			if slices.Contains(p.TailscaleIPs, ip.Unmap()) {
				return ip.Unmap(), true
			}
			continue
		}
		dns := strings.TrimSuffix(p.DNSName, ".")
		short, _, _ := strings.Cut(dns, ".")
		if strings.EqualFold(host, dns) || (short != "" && strings.EqualFold(host, short)) ||
			(dns == "" && strings.EqualFold(host, p.HostName)) {
			return p.TailscaleIPs[0], true
		}
	}
	return netip.Addr{}, false
}
