package tailnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// portFile is the file in StateDir that remembers the node's UDP port.
//
// Why: a node restarted from persisted state keeps its node key but gets a
// new disco key and, by default, a new random UDP port. Its peers'
// magicsock does not drop the direct path it trusted for the old process
// when the disco key changes (tailscale v1.102.5, endpoint.updateFromNode);
// it keeps sending to the old ip:port, and only there, for up to 6.5 s
// (trustUDPAddrDuration) after the last pong. The peer's WireGuard
// handshake response then goes to a dead port and the restarted node
// waits out WireGuard's 5 s handshake retry: ~5.2 s to the first RPC,
// instead of ~50 ms. Binding the same port again makes the peer's cached
// path reach the new process, so the first handshake completes at once.
const portFile = "panther-udp-port"

// udpPort returns the UDP port tsnet should bind: Config.Port if set, else
// the port remembered in StateDir, else 0 (any).
func (n *Node) udpPort() (uint16, error) {
	if n.cfg.Port != 0 {
		return n.cfg.Port, nil
	}
	b, err := os.ReadFile(filepath.Join(n.cfg.StateDir, portFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading remembered UDP port: %w", err)
	}
	p, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 16)
	if err != nil || p == 0 {
		n.log.Warn("ignoring unreadable remembered UDP port", "file", portFile, "content", string(b))
		return 0, nil
	}
	return uint16(p), nil
}

// rememberPort stores the port tsnet actually bound (it falls back to a
// random port when the wanted one is taken) for the next start.
func (n *Node) rememberPort(want, bound uint16) {
	if n.cfg.Port != 0 || bound == 0 || bound == want {
		return
	}
	if want != 0 {
		n.log.Debug("remembered UDP port was taken; using a new one", "wanted", want, "bound", bound)
	}
	path := filepath.Join(n.cfg.StateDir, portFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(int(bound))+"\n"), 0o600); err != nil {
		n.log.Warn("cannot remember UDP port; restarts will be slower", "error", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		n.log.Warn("cannot remember UDP port; restarts will be slower", "error", err)
	}
}
