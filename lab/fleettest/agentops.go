package fleettest

import (
	"context"
	"crypto/ed25519"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/signing"
)

// DeploymentsDir is where the agent keeps its journal records inside a host.
const DeploymentsDir = "/var/lib/panther-agent/deployments"

// Deployments lists the IDs of the agent's journal records on the host,
// sorted (IDs start with their UTC time, so oldest first). A test compares
// two listings to prove a refused request left no record behind.
func (h *Host) Deployments(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(h.SB.Path(DeploymentsDir))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("%s: listing deployments: %v", h.Name, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids
}

// RestartAgent restarts panther-agent.service inside the host, as an
// operator or a NixOS switch would, and waits until the unit is active
// again. The agent may not serve on the tailnet yet when it returns.
func (h *Host) RestartAgent(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := h.SB.Exec(ctx, "systemctl", "restart", "panther-agent.service"); err != nil {
		t.Fatalf("%s: restarting the agent: %v\n%s", h.Name, err, out)
	}
	if err := h.SB.WaitUnit(ctx, "panther-agent.service", "active"); err != nil {
		t.Fatalf("%s: agent after restart: %v\n%s", h.Name, err, h.AgentJournal())
	}
}

// Key reads the operator's private key the fleet's agents trust, for tests
// that sign intents in-process.
func (f *Fleet) Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	key, err := signing.ReadPrivateKey(f.KeyPath)
	if err != nil {
		t.Fatalf("fleettest: operator key: %v", err)
	}
	return key
}

// RebootFromInside reboots the host the way an operator or a watchdog does,
// with `systemctl reboot` inside it: systemd stops every unit (the agent
// and a running switch included) and the host boots again on its disk. It
// returns at once with the boot count to pass to WaitBack.
func (h *Host) RebootFromInside(t testing.TB) (boots int) {
	t.Helper()
	return h.SB.RebootFromInside(t)
}

// WaitBack waits until the host has booted again after boots (see
// RebootFromInside, Host.SB.Boots) and its agent unit is active, bounded by
// timeout. The agent may not serve on the tailnet yet when it returns
// (Fleet.WaitReachable waits for that).
func (h *Host) WaitBack(t testing.TB, boots int, timeout time.Duration) {
	t.Helper()
	begin := time.Now()
	h.SB.WaitBoot(t, boots, timeout)
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout-time.Since(begin), 10*time.Second))
	defer cancel()
	if err := h.SB.WaitUnit(ctx, "panther-agent.service", "active"); err != nil {
		t.Fatalf("%s: agent after the reboot: %v\n%s", h.Name, err, h.AgentJournal())
	}
}
