package tailnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"tailscale.com/client/local"
)

// Dialer opens connections to tailnet peers. The controller holds one;
// *[Node] (its own tsnet node) and *[SystemDialer] (the machine's
// tailscaled) implement it.
type Dialer interface {
	// Dial connects to addr, "host:port" where host is a tailnet name or
	// address. ctx bounds the dial only, not the connection.
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
}

var (
	_ Dialer = (*Node)(nil)
	_ Dialer = (*SystemDialer)(nil)
)

// SystemDialer dials through the tailscaled already running on the
// machine, over its LocalAPI socket (what `pantherctl --via system` uses).
type SystemDialer struct {
	lc  *local.Client
	log hclog.Logger
}

// NewSystemDialer returns a dialer using lc to reach tailscaled; a nil lc
// means the platform's default tailscaled socket.
func NewSystemDialer(lc *local.Client, log hclog.Logger) *SystemDialer {
	if lc == nil {
		lc = &local.Client{}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &SystemDialer{lc: lc, log: log.Named("tailnet-system")}
}

// Dial asks tailscaled to connect to addr and hands back the connection.
// Only TCP is supported. As with [Node.Dial], host names are looked up in
// tailscaled's netmap only and addresses outside the tailnet are refused,
// so traffic never leaves the tailnet by accident.
func (d *SystemDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("system tailscaled dial %s %s: network not supported", network, addr)
	}
	target, err := resolvePeer(ctx, d.lc, addr)
	if err != nil {
		return nil, fmt.Errorf("system tailscaled dial %s: %w", addr, err)
	}
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("system tailscaled dial %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("system tailscaled dial %s: bad port: %w", addr, err)
	}
	d.log.Debug("dialing", "addr", addr)
	c, err := d.lc.UserDial(ctx, network, host, uint16(port))
	if err != nil {
		return nil, fmt.Errorf("system tailscaled dial %s: %w", addr, err)
	}
	return c, nil
}

// DefaultStateDir returns where a controller keeps the tsnet state of the
// node called name, so that later starts reuse its identity: under
// $XDG_STATE_HOME (default ~/.local/state) on Linux and BSDs, under
// os.UserConfigDir elsewhere; always in a "panther/tailnet-<name>" subdir.
func DefaultStateDir(name string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		switch runtime.GOOS {
		case "darwin", "windows", "ios", "android", "plan9":
			dir, err := os.UserConfigDir()
			if err != nil {
				return "", fmt.Errorf("locating state dir: %w", err)
			}
			base = dir
		default:
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locating state dir: %w", err)
			}
			base = filepath.Join(home, ".local", "state")
		}
	}
	return filepath.Join(base, "panther", "tailnet-"+name), nil
}
