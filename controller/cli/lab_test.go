package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabRunsPantherLab(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string // panther-lab on PATH; "" for none
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "missing", args: []string{"lab", "demo"}, wantCode: ExitError, wantOut: "panther-lab is neither next to pantherctl nor on PATH"},
		{name: "passes args and exit code", script: "#!/bin/sh\necho \"lab got: $*\"\nexit 3\n",
			args: []string{"lab", "up", "--dir", "/x", "--keep"}, wantCode: 3, wantOut: "lab got: up --dir /x --keep"},
		{name: "help goes to panther-lab", script: "#!/bin/sh\necho \"lab got: $*\"\n",
			args: []string{"help", "lab"}, wantCode: ExitOK, wantOut: "lab got: --help"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.script != "" {
				if err := os.WriteFile(filepath.Join(dir, "panther-lab"), []byte(tc.script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir)
			var out, errb bytes.Buffer
			code := Run(context.Background(), tc.args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			if all := out.String() + errb.String(); !strings.Contains(all, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, all)
			}
		})
	}
}
