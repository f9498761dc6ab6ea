// Package hostname holds the rules for host names, in one place: the name
// of a host's configuration in the flake (nixosConfigurations.<name>) and
// a host's name on the tailnet. The agent's configuration, the deploy
// engine, nix calls and the controller's inventory and command line all
// check names here, so they never disagree.
package hostname

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalid: a name breaks the rule it was checked against.
var ErrInvalid = errors.New("invalid host name")

// attrRE: a name that needs no quoting in a flake attribute path (a
// leading digit is fine there, as in NixOS's networking.hostName; a
// leading "-" would read as an option), at most 128 bytes.
var attrRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$`)

// CheckAttr returns an ErrInvalid unless name can be used as an attribute
// of nixosConfigurations without quoting: letters, digits, '-' and '_',
// not starting with '-', at most 128.
func CheckAttr(name string) error {
	if !attrRE.MatchString(name) {
		return fmt.Errorf("%q is not a plain nixosConfigurations attribute name (use letters, digits, '-' and '_', not starting with '-', at most 128): %w", name, ErrInvalid)
	}
	return nil
}

// CheckTailnet returns an ErrInvalid unless name can be a host's name on
// the tailnet: letters, digits, '-', '_' and '.', not starting with '-'
// or '.', at most 253.
func CheckTailnet(name string) error {
	ok := name != "" && len(name) <= 253 && name[0] != '-' && name[0] != '.'
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a hostname (use letters, digits, '-', '_' and '.'): %w", name, ErrInvalid)
	}
	return nil
}
