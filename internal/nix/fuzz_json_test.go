package nix

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParseBuildJSON: `nix build --json` output never panics the parser;
// an accepted path is the first result's out output, never empty.
func FuzzParseBuildJSON(f *testing.F) {
	f.Add([]byte(`[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-x"}}]`))
	f.Add([]byte(`[{"outputs":{"dev":"/nix/store/c"}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"outputs":{"out":1}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, out []byte) {
		p, err := ParseBuildJSON(out)
		if err != nil {
			if !errors.Is(err, ErrParse) && !errors.Is(err, ErrNoOutput) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if p == "" {
			t.Fatal("accepted an empty path")
		}
		var res []struct {
			Outputs map[string]string `json:"outputs"`
		}
		if json.Unmarshal(out, &res) != nil || len(res) == 0 || res[0].Outputs["out"] != p {
			t.Fatalf("returned %q, not the first result's out", p)
		}
	})
}

// stdoutRunner answers every command with stdout and stderr.
type stdoutRunner struct{ stdout, stderr []byte }

func (r stdoutRunner) Run(_ context.Context, c Cmd) error {
	c.Stdout.Write(r.stdout)
	c.Stderr.Write(r.stderr)
	return nil
}

// FuzzHostInfo feeds fuzzed `nix eval --json` output (and stderr) to
// HostInfo: it never panics and returns either a typed parse error or the
// decoded lists.
func FuzzHostInfo(f *testing.F) {
	f.Add([]byte(`{"hosts":["alpha","beta"],"warnings":["w"]}`), []byte("evaluating...\n"))
	f.Add([]byte(`{"hosts":["beta"],"warnings":null}`), []byte{})
	f.Add([]byte(`{"hosts":"alpha"}`), []byte("\x1b[31merror\x1b[0m\n"))
	f.Add([]byte(`[]`), []byte("\r\n\xff"))
	f.Fuzz(func(t *testing.T, stdout, stderr []byte) {
		var lines []string
		n := New(Options{Runner: stdoutRunner{stdout: stdout, stderr: stderr}, Environ: []string{}}, nil)
		hosts, warnings, err := n.HostInfo(context.Background(), "path:/src", "alpha")
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var want struct {
			Hosts    []string `json:"hosts"`
			Warnings []string `json:"warnings"`
		}
		if json.Unmarshal(stdout, &want) != nil || len(want.Hosts) != len(hosts) || len(want.Warnings) != len(warnings) {
			t.Fatalf("HostInfo = %q, %q from %q", hosts, warnings, stdout)
		}
		// Build reads stderr line by line, ANSI stripped, into onLine.
		if _, err := n.Build(context.Background(), "path:/src#x", func(l string) { lines = append(lines, l) }); err == nil {
			for _, l := range lines {
				if strings.Contains(l, "\n") {
					t.Fatalf("a build line holds a newline: %q", l)
				}
			}
		}
	})
}
