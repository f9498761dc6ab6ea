package nix

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParseGenerations checks that the parser never panics and that what it
// accepts prints back (as nix-env would) to the same generations.
func FuzzParseGenerations(f *testing.F) {
	for _, s := range []string{
		"",
		"   1   2026-11-25 22:13:44   \n   2   2026-11-25 22:14:02   (current)\n",
		"  41   2025-01-02 03:04:05   (current)\n",
		"error: profile does not exist\n",
		"  1   2026-02-30 22:13:44\n",
		" 007 2026-11-25 00:00:00 (current)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		gens, err := ParseGenerations(in, time.UTC)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, g := range gens {
			fmt.Fprintf(&b, "%4d   %s   ", g.Number, g.Created.Format("2006-01-02 15:04:05"))
			if g.Current {
				b.WriteString("(current)")
			}
			b.WriteString("\n")
		}
		back, err := ParseGenerations(b.String(), time.UTC)
		if err != nil {
			t.Fatalf("reprint %q of %q does not parse: %v", b.String(), in, err)
		}
		if fmt.Sprint(back) != fmt.Sprint(gens) {
			t.Fatalf("round trip of %q: %v != %v", in, back, gens)
		}
	})
}

// FuzzParseDiffClosures checks that the parser never panics and that every
// change it accepts renders to a line that parses to the same change.
func FuzzParseDiffClosures(f *testing.F) {
	for _, s := range []string{
		"",
		"foo: 1.0 → 1.1, \x1b[31;1m+19.5 KiB\x1b[0m\n",
		"acl: ∅ → 2.3.1, +301.2 KiB\nzlib: 1.2.13 → ∅, -125.0 KiB\nglibc: -16.0 KiB\n",
		"  python3: 3.11.7, 3.12.1 → 3.12.2, ε, +8.0 KiB\n",
		"nixos-system-alpha: 26.05.lab-good → 26.05.lab-good-v2\n",
		"x: +0.04 KiB",
		"garbage",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		changes, err := ParseDiffClosures(in)
		if err != nil {
			return
		}
		for _, c := range changes {
			line := c.String()
			if strings.ContainsAny(line, "\x1b\n") {
				continue // escape or newline fragments left by stripping: not a nix line
			}
			back, err := ParseDiffClosures(line)
			if err != nil || len(back) != 1 {
				t.Fatalf("render %q of %#v does not parse back: %v %#v", line, c, err, back)
			}
			if fmt.Sprintf("%q %q %q", back[0].Name, back[0].Old, back[0].New) != fmt.Sprintf("%q %q %q", c.Name, c.Old, c.New) {
				t.Fatalf("round trip %#v -> %q -> %#v", c, line, back[0])
			}
			if d := back[0].SizeDelta - c.SizeDelta; d > 52 || d < -52 {
				t.Fatalf("size drift %#v -> %q -> %#v", c, line, back[0])
			}
		}
	})
}
