package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// netPool is the range /30 links are drawn from. It is private address
// space that test machines rarely use; a draw that overlaps an address the
// host already has is thrown away.
const (
	netPool     = "10.213.0.0/16"
	linkBits    = 30
	sandboxIfce = "eth0"
)

// network is the veth link between the host and a sandbox's network
// namespace. It keeps its addresses across reboots; the veth pair itself is
// created per boot because it dies with the namespace.
type network struct {
	hostIf string     // host side of the veth pair
	host   netip.Addr // address of hostIf, the sandbox's gateway
	guest  netip.Addr // address of eth0 inside the sandbox
}

// allocNetwork draws an unused /30 from netPool and a unique interface name.
// Parallel test processes draw independently; with 16384 slots and a check
// against the host's addresses a clash is improbable, and attach reports it.
func allocNetwork() (*network, error) {
	pool := netip.MustParsePrefix(netPool)
	used, err := hostPrefixes()
	if err != nil {
		return nil, err
	}
	slots := 1 << (linkBits - pool.Bits())
	for range 64 {
		base := pool.Addr().As4()
		off := uint32(rand.IntN(slots)) << (32 - linkBits)
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]) | off
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), linkBits)
		if overlapsAny(p, used) {
			continue
		}
		host := p.Addr().Next()
		return &network{hostIf: "psb" + randomHex(4), host: host, guest: host.Next()}, nil
	}
	return nil, errors.New("no free /30 left in " + netPool)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// hostPrefixes lists the IPv4 prefixes configured on the host's interfaces.
func hostPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// attach creates the veth pair with its sandbox end (eth0) inside the
// network namespace of pid and configures the host end. The sandbox end is
// configured by the init step.
func (n *network) attach(ctx context.Context, pid int) error {
	add := []string{"link", "add", n.hostIf, "type", "veth", "peer", "name", sandboxIfce, "netns", strconv.Itoa(pid)}
	// The previous boot's pair disappears asynchronously with its namespace.
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := runIP(ctx, add...)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "File exists") || time.Now().After(deadline) {
			return err
		}
		_ = runIP(ctx, "link", "del", n.hostIf)
		time.Sleep(50 * time.Millisecond)
	}
	if err := runIP(ctx, "addr", "add", n.hostPrefix().String(), "dev", n.hostIf); err != nil {
		return err
	}
	return runIP(ctx, "link", "set", n.hostIf, "up")
}

// detach deletes the veth pair (both ends) if it still exists. The kernel
// also deletes it when the sandbox's network namespace dies, asynchronously:
// the link may be gone before ip looks it up ("Cannot find device") or
// between the lookup and the delete ("No such device").
func (n *network) detach(ctx context.Context) error {
	err := runIP(ctx, "link", "del", n.hostIf)
	if err != nil && (strings.Contains(err.Error(), "Cannot find device") || strings.Contains(err.Error(), "No such device")) {
		return nil
	}
	return err
}

func (n *network) hostPrefix() netip.Prefix  { return netip.PrefixFrom(n.host, linkBits) }
func (n *network) guestPrefix() netip.Prefix { return netip.PrefixFrom(n.guest, linkBits) }

// runIP runs one iproute2 command on the host.
func runIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
