package nix

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrBadSubdir: a source subdirectory cannot be put into a path: flake
// reference as it is.
var ErrBadSubdir = errors.New("invalid source subdirectory")

// maxSubdirLen bounds a source subdirectory.
const maxSubdirLen = 1024

// CheckSubdir returns ErrBadSubdir unless sub ("" for the top) is a clean
// relative directory that means exactly itself inside a path: flake
// reference: no "..", no absolute path, and nothing a flake reference
// parses ("?" starts a query such as ?dir= or ?rev=, "#" an attribute, "%"
// an escape) or a shell or terminal would: only letters, digits and
// "/._+-@=,". Every component of the controller's and the agent's path
// checks goes through here.
func CheckSubdir(sub string) error {
	if sub == "" {
		return nil
	}
	switch {
	case len(sub) > maxSubdirLen:
		return fmt.Errorf("%.64q...: longer than %d bytes: %w", sub, maxSubdirLen, ErrBadSubdir)
	case path.IsAbs(sub):
		return fmt.Errorf("%q: absolute: %w", sub, ErrBadSubdir)
	case path.Clean(sub) != sub:
		return fmt.Errorf("%q: not clean (want %q): %w", sub, path.Clean(sub), ErrBadSubdir)
	case sub == ".." || strings.HasPrefix(sub, "../"):
		return fmt.Errorf("%q: escapes the source: %w", sub, ErrBadSubdir)
	}
	for _, r := range sub {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._+-@=,", r)) {
			return fmt.Errorf("%q: %q is not allowed in a flake reference path (letters, digits and /._+-@=, only): %w", sub, r, ErrBadSubdir)
		}
	}
	return nil
}
