package nix

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pantheros/panther/internal/hostname"
)

// CheckHost returns ErrBadHost unless host can be used as an attribute of
// nixosConfigurations without quoting: the rule of package hostname, which
// the agent's config (flakeHost), the deploy engine and the controller's
// inventory share.
func CheckHost(host string) error {
	if err := hostname.CheckAttr(host); err != nil {
		return fmt.Errorf("%q: %w", host, ErrBadHost)
	}
	return nil
}

// Toplevel returns the installable of a host's system closure:
// <flakeRef>#nixosConfigurations.<host>.config.system.build.toplevel.
func Toplevel(flakeRef, host string) (string, error) {
	if err := CheckHost(host); err != nil {
		return "", err
	}
	return flakeRef + "#nixosConfigurations." + host + ".config.system.build.toplevel", nil
}

// Build runs `nix build --json --no-link -L <installable>` and returns the
// out path. Every stderr line (build logs included) goes to onLine, which
// may be nil.
func (n *Nix) Build(ctx context.Context, installable string, onLine func(string)) (string, error) {
	out, err := n.run(ctx, []string{n.nix, "build", "--json", "--no-link", "-L", installable}, onLine)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", installable, err)
	}
	p, err := ParseBuildJSON(out)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", installable, err)
	}
	return p, nil
}

// ParseBuildJSON returns outputs.out of the first result printed by
// `nix build --json`.
func ParseBuildJSON(out []byte) (string, error) {
	var res []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return "", fmt.Errorf("%w: build json: %v", ErrParse, err)
	}
	if len(res) == 0 || res[0].Outputs["out"] == "" {
		return "", ErrNoOutput
	}
	return res[0].Outputs["out"], nil
}

// Hosts returns the names of the flake's nixosConfigurations, sorted (as
// nix sorts attribute names).
func (n *Nix) Hosts(ctx context.Context, flakeRef string) ([]string, error) {
	var hosts []string
	if err := n.evalJSON(ctx, &hosts, flakeRef+"#nixosConfigurations", "--apply", "builtins.attrNames"); err != nil {
		return nil, fmt.Errorf("list hosts of %s: %w", flakeRef, err)
	}
	return hosts, nil
}

// Warnings returns config.warnings of one host: what NixOS would print as
// "trace: warning:" lines while building it.
func (n *Nix) Warnings(ctx context.Context, flakeRef, host string) ([]string, error) {
	if err := CheckHost(host); err != nil {
		return nil, err
	}
	var warnings []string
	if err := n.evalJSON(ctx, &warnings, flakeRef+"#nixosConfigurations."+host+".config.warnings"); err != nil {
		return nil, fmt.Errorf("warnings of %s: %w", host, err)
	}
	return warnings, nil
}

// HostInfo returns the flake's nixosConfigurations names and, when host is
// among them, its config.warnings — in one evaluation instead of the two of
// Hosts and Warnings. warnings is nil when host is not in the flake.
func (n *Nix) HostInfo(ctx context.Context, flakeRef, host string) (hosts, warnings []string, err error) {
	if err := CheckHost(host); err != nil {
		return nil, nil, err
	}
	var out struct {
		Hosts    []string `json:"hosts"`
		Warnings []string `json:"warnings"`
	}
	apply := fmt.Sprintf(`cs: { hosts = builtins.attrNames cs; warnings = if builtins.hasAttr "%s" cs then (builtins.getAttr "%s" cs).config.warnings else null; }`, host, host)
	if err := n.evalJSON(ctx, &out, flakeRef+"#nixosConfigurations", "--apply", apply); err != nil {
		return nil, nil, fmt.Errorf("hosts and warnings of %s: %w", flakeRef, err)
	}
	return out.Hosts, out.Warnings, nil
}

// evalJSON runs `nix eval --json <installable> [args]` into v.
func (n *Nix) evalJSON(ctx context.Context, v any, installable string, args ...string) error {
	argv := append([]string{n.nix, "eval", "--json", installable}, args...)
	out, err := n.run(ctx, argv, nil)
	if err != nil {
		return err
	}
	return jsonUnmarshal(out, v)
}

func jsonUnmarshal(out []byte, v any) error {
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%w: eval json: %v", ErrParse, err)
	}
	return nil
}
