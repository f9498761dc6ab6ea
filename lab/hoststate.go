package lab

import (
	"context"
	"os"
	"sort"
	"strings"
)

// CurrentSystem is where the host's /run/current-system points ("" if
// nowhere).
func (h *Host) CurrentSystem(ctx context.Context) string {
	out, err := h.SB.Exec(ctx, "readlink", "-f", "/run/current-system")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Variant is the lab variant of the running system ("" if none).
func (h *Host) Variant(ctx context.Context) string {
	out, err := h.SB.Exec(ctx, "cat", "/run/current-system/lab/variant")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// UnitProperty returns a property of a unit on the host ("" on error).
func (h *Host) UnitProperty(ctx context.Context, unit, prop string) string {
	out, err := h.SB.Exec(ctx, "systemctl", "show", "--property="+prop, "--value", unit)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// LinkUp reports whether the host's network link (eth0) is up.
func (h *Host) LinkUp(ctx context.Context) bool {
	out, err := h.SB.Exec(ctx, "ip", "-o", "link", "show", "eth0")
	if err != nil {
		return false
	}
	flags, _, _ := strings.Cut(string(out), ">")
	return strings.Contains(flags+",", ",UP,")
}

// Generations lists the host's system profile links, "system-N-link ->
// /nix/store/...", sorted: what a deployment changes on disk.
func (h *Host) Generations() []string {
	dir := h.SB.Path("/nix/var/nix/profiles")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "system" && !strings.HasPrefix(e.Name(), "system-") {
			continue
		}
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		out = append(out, e.Name()+" -> "+target)
	}
	sort.Strings(out)
	return out
}

// State is what a deployment may change on a host, as one comparable
// string: the running system and the profile's generations.
func (h *Host) State(ctx context.Context) string {
	return "current " + h.CurrentSystem(ctx) + "\n" + strings.Join(h.Generations(), "\n")
}
