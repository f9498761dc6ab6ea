package nix

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigItem(t *testing.T) {
	showConfig := func(out string) func() (string, error) {
		return func() (string, error) { return out, nil }
	}
	only := func(name string) func(string) bool { return func(g string) bool { return g == name } }
	for _, tc := range []struct {
		name       string
		show       func() (string, error)
		groups     func(string) bool
		wantSubstr []string // empty: no item
	}{
		{
			name:   "group missing (Debian nix-bin without nix-setup-systemd)",
			show:   showConfig("allowed-users = *\nbuild-users-group = nixbld\nsandbox = true\n"),
			groups: only("root"),
			wantSubstr: []string{`build-users-group is "nixbld"`, "no such group", "make setup",
				"mkdir -p /etc/nix && echo 'build-users-group =' >> /etc/nix/nix.conf"},
		},
		{name: "group exists", show: showConfig("build-users-group = nixbld\n"), groups: only("nixbld")},
		{name: "no build users", show: showConfig("build-users-group = \nsandbox = false\n"), groups: only("root")},
		{name: "setting absent", show: showConfig("sandbox = false\n"), groups: only("root")},
		{
			name:       "nix fails",
			show:       func() (string, error) { return "", errors.New("nix show-config: error: bad nix.conf") },
			groups:     only("root"),
			wantSubstr: []string{"nix does not run", "bad nix.conf"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := configItem(tc.show, tc.groups, "/etc/nix/nix.conf")
			if len(tc.wantSubstr) == 0 {
				if got != "" {
					t.Fatalf("item = %q, want none", got)
				}
				return
			}
			for _, s := range tc.wantSubstr {
				if !strings.Contains(got, s) {
					t.Errorf("item = %q, want it to contain %q", got, s)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("item = %q, want one line", got)
			}
		})
	}
}

// TestCheckConfigRealNix runs the machine's nix with a nix.conf of the
// test's own (NIX_CONF_DIR): a build users group that does not exist is
// caught with the fix naming that file, and the fix's line clears it.
func TestCheckConfigRealNix(t *testing.T) {
	if _, err := exec.LookPath("nix"); err != nil {
		t.Skip("nix is not installed (Debian package nix-bin)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nix.conf")
	environ := append(withoutNixEnv(os.Environ()), "NIX_CONF_DIR="+dir, "NIX_USER_CONF_FILES="+filepath.Join(dir, "none.conf"))

	const group = "panther-test-no-such-group"
	if err := os.WriteFile(conf, []byte("build-users-group = "+group+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	item := CheckConfig(environ)
	if !strings.Contains(item, `"`+group+`"`) || !strings.Contains(item, ">> "+conf) {
		t.Fatalf("item = %q, want the missing group and the fix for %s", item, conf)
	}
	// The one-line fix, as the item gives it.
	fix := item[strings.Index(item, "mkdir -p "):]
	if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", fix, err, out)
	}
	if item := CheckConfig(environ); item != "" {
		t.Fatalf("after the fix, item = %q, want none", item)
	}
}

func withoutNixEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "NIX_CONF") && !strings.HasPrefix(kv, "NIX_USER_CONF_FILES=") {
			out = append(out, kv)
		}
	}
	return out
}
