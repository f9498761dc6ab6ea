package nix

import (
	"context"
	"fmt"
	"strings"
)

// Evaluation is what one evaluation of a flake yields for one host: the
// flake's nixosConfigurations names and, when the host is among them, its
// config.warnings and the derivation of its system toplevel.
type Evaluation struct {
	Hosts    []string // nixosConfigurations names, sorted
	Found    bool     // the host is in Hosts
	Warnings []string // config.warnings (nil when not Found)
	DrvPath  string   // the toplevel's derivation, in the store after Evaluate
	OutPath  string   // its out path (not built)
}

// Evaluate evaluates flakeRef once for host: `nix eval --json
// <flakeRef>#nixosConfigurations --apply <f>` yields the host names, the
// host's config.warnings and its toplevel's drvPath and outPath. Evaluating
// drvPath writes the derivation (and those it needs) to the store, so
// BuildDerivation can build it without evaluating the flake again. Every
// stderr line (builtins.trace output among them) goes to onLine (may be
// nil).
func (n *Nix) Evaluate(ctx context.Context, flakeRef, host string, onLine func(string)) (Evaluation, error) {
	if err := CheckHost(host); err != nil {
		return Evaluation{}, err
	}
	var out struct {
		Hosts    []string `json:"hosts"`
		Found    bool     `json:"found"`
		Warnings []string `json:"warnings"`
		DrvPath  string   `json:"drv"`
		OutPath  string   `json:"out"`
	}
	// host matches hostRE: it needs no escaping inside a Nix string. The
	// result has no outPath attribute: nix would print an attribute set
	// with one as that string.
	apply := fmt.Sprintf(`cs: let found = builtins.hasAttr "%[1]s" cs; c = (builtins.getAttr "%[1]s" cs).config; t = c.system.build.toplevel; in `+
		`{ hosts = builtins.attrNames cs; inherit found; warnings = if found then c.warnings else null; `+
		`drv = if found then t.drvPath else null; out = if found then t.outPath else null; }`, host)
	argv := []string{n.nix, "eval", "--json", flakeRef + "#nixosConfigurations", "--apply", apply}
	b, err := n.run(ctx, argv, onLine)
	if err != nil {
		return Evaluation{}, fmt.Errorf("evaluating %s for %s: %w", flakeRef, host, err)
	}
	if err := jsonUnmarshal(b, &out); err != nil {
		return Evaluation{}, err
	}
	ev := Evaluation{Hosts: out.Hosts, Found: out.Found, Warnings: out.Warnings, DrvPath: out.DrvPath, OutPath: out.OutPath}
	if ev.Found && (!strings.HasSuffix(ev.DrvPath, ".drv") || ev.OutPath == "") {
		return Evaluation{}, fmt.Errorf("%w: evaluation of %s gave drvPath %q, outPath %q", ErrParse, host, ev.DrvPath, ev.OutPath)
	}
	return ev, nil
}

// BuildDerivation builds an evaluated derivation and returns its out path:
// `nix build --json --no-link -L <drvPath>`, which nix 2.8 reads as "build
// the derivation's outputs" (later nix versions spell it <drvPath>^out and
// still accept the bare path with a warning). Nothing is evaluated.
func (n *Nix) BuildDerivation(ctx context.Context, drvPath string, onLine func(string)) (string, error) {
	if !strings.HasPrefix(drvPath, "/") || !strings.HasSuffix(drvPath, ".drv") {
		return "", fmt.Errorf("%w: %q is not a derivation path", ErrParse, drvPath)
	}
	return n.Build(ctx, drvPath, onLine)
}
