package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantheros/panther/internal/manpage"
)

// runCLI runs pantherctl with args and returns stdout, stderr and the code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" }})
	return out.String(), errb.String(), code
}

// everyFlag calls f for every command and each of its flags.
func everyFlag(t *testing.T, f func(cmd *command, fl *flag.Flag)) {
	t.Helper()
	c := newCLI(IO{})
	for _, cmd := range c.commands {
		f(cmd, nil)
		c.flagSet(cmd).VisitAll(func(fl *flag.Flag) { f(cmd, fl) })
	}
}

func TestCompletionCoversEveryCommandAndFlag(t *testing.T) {
	for _, shell := range completionShells {
		t.Run(shell, func(t *testing.T) {
			script, stderr, code := runCLI(t, "completion", shell)
			if code != ExitOK || script == "" {
				t.Fatalf("completion %s: exit %d: %s", shell, code, stderr)
			}
			n := 0
			everyFlag(t, func(cmd *command, fl *flag.Flag) {
				if fl == nil {
					if !strings.Contains(script, cmd.name) {
						t.Errorf("command %s missing", cmd.name)
					}
					return
				}
				n++
				var want string
				switch shell {
				case "bash", "zsh":
					want = "--" + fl.Name
				case "fish":
					want = "__fish_seen_subcommand_from " + cmd.name + "' -l " + fl.Name
				}
				if !strings.Contains(script, want) {
					t.Errorf("%s --%s missing (looked for %q)", cmd.name, fl.Name, want)
				}
			})
			if n < 20 {
				t.Fatalf("only %d flags seen: the command list is not what the CLI runs", n)
			}
			for _, word := range []string{"demo", "bash zsh fish"} {
				if !strings.Contains(script, word) {
					t.Errorf("argument words %q missing", word)
				}
			}
			if shell == "zsh" && strings.Contains(script, "'--flake=[flake directory]:flake:_files'") == false {
				t.Errorf("zsh spec of a valued flag is not as expected")
			}
			if sh, err := exec.LookPath(shell); err == nil {
				f := filepath.Join(t.TempDir(), "c")
				os.WriteFile(f, []byte(script), 0o644)
				if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
					t.Errorf("%s -n: %v\n%s", shell, err, out)
				}
			}
		})
	}
	if _, _, code := runCLI(t, "completion", "tcsh"); code != ExitUsage {
		t.Errorf("unknown shell: exit %d, want %d", code, ExitUsage)
	}
}

// TestBashCompletionCompletes runs the bash function as bash would.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	script, _, _ := runCLI(t, "completion", "bash")
	complete := func(words ...string) string {
		t.Helper()
		f := filepath.Join(t.TempDir(), "c")
		os.WriteFile(f, []byte(script), 0o644)
		line := `source "$1"; COMP_WORDS=(` + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _pantherctl; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", line, "bash", f).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := complete("pantherctl", "ro"); got != "rollback" {
		t.Errorf("pantherctl ro<TAB> = %q", got)
	}
	if got := complete("pantherctl", "deploy", "--dry"); got != "--dry-run" {
		t.Errorf("deploy --dry<TAB> = %q", got)
	}
	if got := complete("pantherctl", "completion", "z"); got != "zsh" {
		t.Errorf("completion z<TAB> = %q", got)
	}
}

func quoteAll(ws []string) []string {
	var out []string
	for _, w := range ws {
		out = append(out, "'"+w+"'")
	}
	return out
}

func TestManPageCoversEveryCommandAndFlag(t *testing.T) {
	page, stderr, code := runCLI(t, "man")
	if code != ExitOK {
		t.Fatalf("man: exit %d: %s", code, stderr)
	}
	everyFlag(t, func(cmd *command, fl *flag.Flag) {
		if fl == nil {
			if !strings.Contains(page, ".SS \""+manpage.Escape(cmd.name)+"\"") {
				t.Errorf("no section for %s", cmd.name)
			}
			return
		}
		if !strings.Contains(page, `\fB\-\-`+strings.ReplaceAll(fl.Name, "-", `\-`)) {
			t.Errorf("%s --%s missing", cmd.name, fl.Name)
		}
	})
	host, _ := os.Hostname()
	if host != "" && strings.Contains(page, host) || strings.Contains(page, defaultConfigDir()) {
		t.Errorf("the page depends on the machine generating it (host %q, config dir %q)", host, defaultConfigDir())
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff warns: %v\n%s", err, out)
		}
	}
}
