package deploy

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseDryActivateLine: dry-activate's stderr (from the new system's
// switch-to-configuration, so from the flake being deployed) never panics
// the parser, only "would <verb> the following units: " lines of the four
// known verbs add units (surrounding white space is ignored, as a CR or an
// indent may come with a line), and every unit added is a trimmed,
// non-empty item of that line's list.
func FuzzParseDryActivateLine(f *testing.F) {
	for _, l := range []string{
		"would stop the following units: a.service, b.service",
		"would restart the following units: nginx.service",
		"would reload the following units: ",
		"would start the following units: x.timer,, y.socket ,",
		"would NOT stop the following changed units: z.service",
		"would activate the configuration...",
		"would restart systemd",
		"would the following units: ",
		"would  the following units: the following units: a",
	} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, l string) {
		var s Summary
		parseDryActivateLine(l, &s)
		added := slices.Concat(s.WouldStop, s.WouldRestart, s.WouldStart, s.WouldReload)
		if len(added) == 0 {
			return
		}
		if tl := strings.TrimSpace(l); !strings.HasPrefix(tl, "would ") || !strings.Contains(tl, " the following units: ") {
			t.Fatalf("units %q from a line that is not a unit list: %q", added, l)
		}
		n := 0
		for _, list := range [][]string{s.WouldStop, s.WouldRestart, s.WouldStart, s.WouldReload} {
			if len(list) > 0 {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("one line filled %d lists: %+v", n, s)
		}
		for _, u := range added {
			if u == "" || u != strings.TrimSpace(u) || strings.Contains(u, ",") {
				t.Fatalf("unit %q from %q", u, l)
			}
		}
	})
}
