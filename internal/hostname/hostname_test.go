package hostname

import (
	"errors"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	tests := []struct {
		name          string
		attr, tailnet bool
	}{
		{"alpha", true, true},
		{"web-1", true, true},
		{"1web", true, true}, // a leading digit is fine in both
		{"_build", true, true},
		{"-web", false, false}, // a leading dash is an option to nix and to tools
		{"web.example", false, true},
		{".web", false, false},
		{"", false, false},
		{"we b", false, false},
		{"wéb", false, false},
		{strings.Repeat("a", 128), true, true},
		{strings.Repeat("a", 129), false, true},
		{strings.Repeat("a", 254), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckAttr(tc.name); (err == nil) != tc.attr || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("CheckAttr = %v, want ok %v", err, tc.attr)
			}
			if err := CheckTailnet(tc.name); (err == nil) != tc.tailnet || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("CheckTailnet = %v, want ok %v", err, tc.tailnet)
			}
		})
	}
}
