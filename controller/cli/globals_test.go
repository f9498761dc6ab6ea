package cli

import (
	"flag"
	"testing"

	"github.com/peterbourgon/ff/v3"
)

// TestNoLogsNoSupportDefaultsToControlURL: with a self-hosted control
// server pantherctl's node still dialled Tailscale's log servers unless
// --no-logs-no-support was given; it is now the default with --control-url.
func TestNoLogsNoSupportDefaultsToControlURL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--control-url", "https://hs.example.com"}, true},
		{[]string{"--control-url", "https://hs.example.com", "--no-logs-no-support=false"}, false},
		{[]string{"--no-logs-no-support"}, true},
	} {
		var g globals
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		g.register(fs)
		if err := ff.Parse(fs, tc.args, ff.WithEnvVarPrefix("PANTHER_TEST_NONE")); err != nil {
			t.Fatal(err)
		}
		g.defaults(fs)
		if g.noLogsNoSupport != tc.want {
			t.Errorf("%q: noLogsNoSupport = %v, want %v", tc.args, g.noLogsNoSupport, tc.want)
		}
	}
}
