package nix

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Generation is one generation of a Nix profile.
type Generation struct {
	Number  int
	Created time.Time
	Current bool
	// Path is the store path the generation links to ("" if its
	// <profile>-<N>-link could not be read).
	Path string
}

// CurrentGeneration reads the number of profile's current generation from
// its link (<profile> -> <name>-<N>-link), as nix-env does, without running
// nix. It returns 0 and an error when the profile has no generation yet.
func CurrentGeneration(profile string) (int, error) {
	target, err := os.Readlink(profile)
	if err != nil {
		return 0, err
	}
	base := filepath.Base(target)
	prefix := filepath.Base(profile) + "-"
	if !strings.HasPrefix(base, prefix) || !strings.HasSuffix(base, "-link") {
		return 0, fmt.Errorf("%w: %s points at %s, not a generation link", ErrParse, profile, target)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(base, prefix), "-link"))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: generation number in %s", ErrParse, target)
	}
	return n, nil
}

// nixEnvArgv is the argv of a nix-env command on profile.
func (n *Nix) nixEnvArgv(profile string, args ...string) []string {
	argv := append([]string{n.nixEnv}, n.storeArgs...)
	argv = append(argv, "-p", profile)
	return append(argv, args...)
}

// SetProfile makes storePath the new current generation of profile
// (`nix-env -p <profile> --set <storePath>`); the profile's directory must
// exist.
func (n *Nix) SetProfile(ctx context.Context, profile, storePath string) error {
	if _, err := n.run(ctx, n.nixEnvArgv(profile, "--set", storePath), nil); err != nil {
		return fmt.Errorf("set profile %s to %s: %w", profile, storePath, err)
	}
	return nil
}

// SetSystemProfile is SetProfile for a NixOS system profile: like
// nixos-rebuild, it refuses (ErrNotNixOS) a store path without
// nixos-version before touching the profile, so a wrong path (a package, a
// half-built closure) never becomes the boot default.
func (n *Nix) SetSystemProfile(ctx context.Context, profile, storePath string) error {
	if err := CheckSystem(storePath); err != nil {
		return fmt.Errorf("set profile %s: %w", profile, err)
	}
	return n.SetProfile(ctx, profile, storePath)
}

// CheckSystem returns ErrNotNixOS unless path holds a nixos-version file
// (what nixos-rebuild checks before setting the system profile).
func CheckSystem(path string) error {
	if _, err := os.Stat(filepath.Join(path, "nixos-version")); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: %w (it has no nixos-version)", path, ErrNotNixOS)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SwitchGeneration makes generation number the current one of profile
// (`nix-env -p <profile> --switch-generation <number>`).
func (n *Nix) SwitchGeneration(ctx context.Context, profile string, number int) error {
	if _, err := n.run(ctx, n.nixEnvArgv(profile, "--switch-generation", strconv.Itoa(number)), nil); err != nil {
		return fmt.Errorf("switch %s to generation %d: %w", profile, number, err)
	}
	return nil
}

// KeepGenerations deletes all but the newest keep generations of profile,
// never the current one (`nix-env -p <profile> --delete-generations +<keep>`).
// The store paths stay until the next garbage collection.
func (n *Nix) KeepGenerations(ctx context.Context, profile string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("keep generations of %s: keep must be at least 1, got %d", profile, keep)
	}
	if _, err := n.run(ctx, n.nixEnvArgv(profile, "--delete-generations", "+"+strconv.Itoa(keep)), nil); err != nil {
		return fmt.Errorf("keep %d generations of %s: %w", keep, profile, err)
	}
	return nil
}

// Generations lists the generations of profile, oldest first, with the
// store path each links to. A profile that does not exist has none.
func (n *Nix) Generations(ctx context.Context, profile string) ([]Generation, error) {
	out, err := n.run(ctx, n.nixEnvArgv(profile, "--list-generations"), nil)
	if err != nil {
		return nil, fmt.Errorf("list generations of %s: %w", profile, err)
	}
	gens, err := ParseGenerations(string(out), time.Local)
	if err != nil {
		return nil, fmt.Errorf("list generations of %s: %w", profile, err)
	}
	for i := range gens {
		link := fmt.Sprintf("%s-%d-link", profile, gens[i].Number)
		target, err := os.Readlink(link)
		if err != nil {
			n.log.Warn("cannot read generation link", "link", link, "error", err)
			continue
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(profile), target)
		}
		gens[i].Path = target
	}
	return gens, nil
}

// ParseGenerations parses `nix-env --list-generations`, whose lines are
//
//	1   2026-11-25 22:13:44
//	2   2026-11-25 22:14:02   (current)
//
// with times in loc (nix-env prints local time). Blank lines are skipped;
// any other shape is an ErrParse.
func ParseGenerations(out string, loc *time.Location) ([]Generation, error) {
	var gens []Generation
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || len(f) > 4 || (len(f) == 4 && f[3] != "(current)") {
			return nil, fmt.Errorf("%w: generations line %d %q", ErrParse, i+1, line)
		}
		num, err := strconv.Atoi(f[0])
		if err != nil || num < 0 || f[0][0] == '+' {
			return nil, fmt.Errorf("%w: generations line %d %q: bad number", ErrParse, i+1, line)
		}
		// time.Parse takes a fraction of a second after the seconds (",1",
		// ".5") even when the layout has none; nix-env never prints one.
		if strings.ContainsAny(f[2], ".,") {
			return nil, fmt.Errorf("%w: generations line %d %q: bad time", ErrParse, i+1, line)
		}
		created, err := time.ParseInLocation("2006-01-02 15:04:05", f[1]+" "+f[2], loc)
		if err != nil {
			return nil, fmt.Errorf("%w: generations line %d %q: %v", ErrParse, i+1, line, err)
		}
		gens = append(gens, Generation{Number: num, Created: created, Current: len(f) == 4})
	}
	return gens, nil
}

// NixOSVersion returns the trimmed contents of <path>/nixos-version, or ""
// when the file does not exist (a closure that is not a NixOS system).
func NixOSVersion(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(path, "nixos-version"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nixos version: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
