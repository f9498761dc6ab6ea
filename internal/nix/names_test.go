package nix

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckSubdir: the agent accepted any subdir that did not escape, so
// "sub?dir=other" or "sub#x" went into "path:<store>/sub?dir=other", where
// nix reads a query or an attribute.
func TestCheckSubdir(t *testing.T) {
	for _, ok := range []string{"", "sub", "hosts/web-1", "a.b/c_d/e+f@g=h,i"} {
		if err := CheckSubdir(ok); err != nil {
			t.Errorf("CheckSubdir(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"sub?dir=other", "sub#attr", "sub%3Fx", "/abs", "..", "../up", "a/../..", "a//b", "a/", "./a",
		"with space", "tab\there", "new\nline", "quote\"", "back\\slash", "colon:x", "semi;x", "\x1b[2J",
		strings.Repeat("a", 1025),
	} {
		if err := CheckSubdir(bad); !errors.Is(err, ErrBadSubdir) {
			t.Errorf("CheckSubdir(%q) = %v, want ErrBadSubdir", bad, err)
		}
	}
}

// TestCheckHostIsTheOneRule: the agent's config refused a flakeHost with a
// leading digit that the deploy engine (and NixOS) accept.
func TestCheckHostIsTheOneRule(t *testing.T) {
	for _, ok := range []string{"web1", "1web", "_x", "a-b_c", strings.Repeat("h", 128)} {
		if err := CheckHost(ok); err != nil {
			t.Errorf("CheckHost(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-web", "web.example", "web 1", `web"1`, strings.Repeat("h", 129)} {
		if err := CheckHost(bad); !errors.Is(err, ErrBadHost) {
			t.Errorf("CheckHost(%q) = %v, want ErrBadHost", bad, err)
		}
	}
}
