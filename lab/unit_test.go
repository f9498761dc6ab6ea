package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestExportLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{name: "plain", env: []string{"A=b", "URL=http://10.0.0.1:80/x"}, want: "export A=b URL=http://10.0.0.1:80/x"},
		{name: "space", env: []string{"DIR=/tmp/my lab"}, want: "export DIR='/tmp/my lab'"},
		{name: "quote", env: []string{"X=it's"}, want: `export X='it'\''s'`},
		{name: "empty", env: []string{"E="}, want: "export E=''"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ExportLine(tc.env)
			if got != tc.want {
				t.Errorf("ExportLine(%q) = %q, want %q", tc.env, got, tc.want)
			}
			// The line must mean the same to a real shell.
			out, err := exec.Command("sh", "-c", got+"; env").Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range tc.env {
				if !strings.Contains(string(out), kv+"\n") {
					t.Errorf("sh did not get %q from %q", kv, got)
				}
			}
		})
	}
}

func TestGenerationRows(t *testing.T) {
	out := `GEN  DATE                CUR FAILED NIXOS VERSION                DEPLOYMENT                 RESULT         STORE PATH
4    2026-11-25 23:09:29 *          26.05.lab-v2 (Panther Lab)   20261125T230906Z-c6dee5    rollback       /nix/store/b-v2
3    2026-11-25 23:09:07     x      26.05.lab-cut-network (Panther Lab) 20261125T230906Z-c6dee5    rolled-back    /nix/store/c-cut
1    2026-11-25 23:09:00            26.05.lab-good (Panther Lab) 20261125T230859Z-c88dd4    confirmed      /nix/store/a-good
`
	rows := generationRows(out)
	if len(rows) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	for i, want := range []genRow{{"4", true, "/nix/store/b-v2"}, {"3", false, "/nix/store/c-cut"}, {"1", false, "/nix/store/a-good"}} {
		if rows[i] != want {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("one two three four five", "  ", 12)
	want := "  one two\n  three four\n  five\n"
	if got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	p := &prefixWriter{w: &b, prefix: "> "}
	p.Write([]byte("a\nb"))
	p.Write([]byte("c\n"))
	p.Write([]byte("tail"))
	p.Flush()
	if got, want := b.String(), "> a\n> bc\n> tail\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestClaimAndRemoveOnlyLabDirs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(dir string)
		wantClaim bool
	}{
		{name: "missing", setup: func(string) {}, wantClaim: true},
		{name: "empty", setup: func(dir string) { os.Mkdir(dir, 0o755) }, wantClaim: true},
		{name: "someone's files", setup: func(dir string) {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
		}, wantClaim: false},
		{name: "old lab", setup: func(dir string) {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, markerFile), nil, 0o644)
			os.WriteFile(filepath.Join(dir, "env"), nil, 0o644)
		}, wantClaim: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lab")
			tc.setup(dir)
			err := claimDir(dir)
			if (err == nil) != tc.wantClaim {
				t.Fatalf("claimDir: %v, want claimed=%v", err, tc.wantClaim)
			}
			err = removeDir(dir)
			_, statErr := os.Stat(dir)
			if tc.wantClaim && (err != nil || statErr == nil) {
				t.Errorf("removeDir of a lab dir: %v (stat %v)", err, statErr)
			}
			if !tc.wantClaim && (err == nil || statErr != nil) {
				t.Errorf("removeDir of a foreign dir: %v (stat %v), want refused and kept", err, statErr)
			}
		})
	}
}

func TestRunningPIDIgnoresOtherPrograms(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
	}{
		{name: "no file"},
		{name: "garbage", content: "nope"},
		{name: "this test binary", content: strconv.Itoa(os.Getpid())},
		{name: "no such process", content: "999999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, pidFile))
			if tc.content != "" {
				os.WriteFile(filepath.Join(dir, pidFile), []byte(tc.content), 0o644)
			}
			if pid := runningPID(dir); pid != 0 {
				t.Errorf("runningPID = %d, want 0", pid)
			}
		})
	}
}

func TestRunCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "no command", args: nil, wantCode: ExitUsage, wantOut: "Usage: panther-lab"},
		{name: "help", args: []string{"--help"}, wantCode: ExitOK, wantOut: "Commands:"},
		{name: "unknown", args: []string{"fly"}, wantCode: ExitUsage, wantOut: `unknown command "fly"`},
		{name: "bad flag", args: []string{"demo", "--nope"}, wantCode: ExitUsage, wantOut: "flag provided but not defined"},
		{name: "extra args", args: []string{"down", "now"}, wantCode: ExitUsage, wantOut: "unexpected arguments"},
		{name: "down without lab", args: []string{"down", "--dir", "/nonexistent/panther-lab-test"}, wantCode: ExitOK, wantOut: "No lab in"},
		{name: "env without lab", args: []string{"env", "--dir", "/nonexistent/panther-lab-test"}, wantCode: ExitFailed, wantOut: "no lab running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), tc.args, IO{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out.String(), errb.String())
			}
			if all := out.String() + errb.String(); !strings.Contains(all, tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, all)
			}
		})
	}
}
