package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pantheros/panther/internal/version"
)

// Every command, the usage, the version and the exit codes of
// panther-agent's command line.
func TestRunCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "no command", args: nil, wantCode: exitUsage, wantOut: "panther-agent check-config --config FILE"},
		{name: "help", args: []string{"--help"}, wantCode: exitOK, wantOut: "Run 'panther-agent run --help'"},
		{name: "help command", args: []string{"help"}, wantCode: exitOK, wantOut: "panther-agent man"},
		{name: "version flag", args: []string{"--version"}, wantCode: exitOK, wantOut: "panther-agent " + version.Version},
		{name: "version", args: []string{"version"}, wantCode: exitOK, wantOut: "panther-agent " + version.Version},
		{name: "unknown", args: []string{"fly"}, wantCode: exitUsage, wantOut: `unknown command "fly"`},
		{name: "bad flag", args: []string{"run", "--nope"}, wantCode: exitUsage, wantOut: "flag provided but not defined"},
		{name: "run help", args: []string{"run", "--help"}, wantCode: exitOK, wantOut: "-confirm-timeout"},
		{name: "missing config", args: []string{"check-config", "--config", "/nonexistent/agent.json"}, wantCode: exitFailed, wantOut: "panther-agent: "},
		{name: "man", args: []string{"man"}, wantCode: exitOK, wantOut: ".TH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			if all := out.String() + errb.String(); !strings.Contains(all, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, all)
			}
		})
	}
}
