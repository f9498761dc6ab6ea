package nix

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"
)

// CheckConfig asks the machine's nix (run with environ) for its
// configuration and returns what keeps it from building, as one sentence
// with the one-line fix, or "" when it can build.
//
// It catches a root nix whose build-users-group names a group that does not
// exist: nix then refuses every build ("the group 'nixbld' specified in
// 'build-users-group' does not exist"). That is Debian's nix-bin installed
// without its recommended nix-setup-systemd (no nixbld group, no
// /etc/nix/nix.conf). panther's lab and tests add their own settings but
// leave the build users to the machine's nix.conf.
func CheckConfig(environ []string) string {
	return configItem(func() (string, error) { return showConfig(environ) }, groupExists, confPath(environ))
}

// configItem is CheckConfig with its edges passed in: show returns `nix
// show-config`'s output, exists looks a group up, and conf is the nix.conf
// the fix edits.
func configItem(show func() (string, error), exists func(string) bool, conf string) string {
	out, err := show()
	if err != nil {
		return "nix does not run: " + err.Error()
	}
	group, ok := setting(out, "build-users-group")
	if !ok || group == "" || exists(group) {
		return ""
	}
	return fmt.Sprintf("nix cannot build: its build-users-group is %q but there is no such group (Debian's nix-bin without nix-setup-systemd): "+
		"run 'make setup' in a panther clone, or: mkdir -p %s && echo 'build-users-group =' >> %s",
		group, filepath.Dir(conf), conf)
}

// setting returns the value of name in `nix show-config` output ("name =
// value" lines).
func setting(out, name string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// showConfig runs `nix show-config` (nix-command enabled for this call
// only), or `nix config show` where show-config is gone, and returns its
// standard output.
func showConfig(environ []string) (string, error) {
	out, err := runShowConfig(environ, "show-config")
	if err != nil {
		if out2, err2 := runShowConfig(environ, "config", "show"); err2 == nil {
			return out2, nil
		}
	}
	return out, err
}

func runShowConfig(environ []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nix", append([]string{"--extra-experimental-features", "nix-command"}, args...)...)
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("nix %s: %s", strings.Join(args, " "), msg)
	}
	return stdout.String(), nil
}

// confPath is the system nix.conf nix reads: $NIX_CONF_DIR/nix.conf,
// /etc/nix/nix.conf by default.
func confPath(environ []string) string {
	dir := "/etc/nix"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NIX_CONF_DIR="); ok && v != "" {
			dir = v
		}
	}
	return filepath.Join(dir, "nix.conf")
}

func groupExists(name string) bool {
	_, err := user.LookupGroup(name)
	return err == nil
}
