package nixosmodule

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pantheros/panther/lab/nixtest"
)

// optionDocs is the committed option reference, relative to this package.
const optionDocs = "../docs/nixos-options.md"

// TestModuleOptionDocsCurrent renders the option reference from
// default.nix's declarations (stub/options-doc.nix, through stub/eval.nix)
// with real nix, exactly as `make option-docs` does, and fails when the
// committed docs/nixos-options.md differs: an option added, removed or
// redescribed without regenerating the docs.
func TestModuleOptionDocsCurrent(t *testing.T) {
	env := nixtest.Env(t)
	want, err := os.ReadFile(optionDocs)
	if err != nil {
		t.Fatalf("%v: run make option-docs", err)
	}
	got := renderOptionDocs(t, env)
	if !bytes.Equal(got, want) {
		t.Errorf("docs/nixos-options.md is not what nixos-module/default.nix renders: run make option-docs and commit it\n%s",
			firstDifference(string(want), string(got)))
	}
}

// TestModuleOptionDocsCoverEveryOption checks the reference against the
// declarations themselves: every visible option has a section with a
// description and a type, and internal ones (renderedConfig) have none.
func TestModuleOptionDocsCoverEveryOption(t *testing.T) {
	env := nixtest.Env(t)
	md := string(renderOptionDocs(t, env))
	for _, name := range []string{
		"enable", "package", "checkConfig", "settings", "hostName", "trustedKeys", "port",
		"healthChecks", "healthChecks.*.name", "healthChecks.*.type", "metrics.port",
		"resultHooks.webhookUrl", "extraArgs",
	} {
		heading := "## `services.panther-agent." + name + "`\n\n"
		i := strings.Index(md, heading)
		if i < 0 {
			t.Errorf("no section for services.panther-agent.%s", name)
			continue
		}
		section := md[i+len(heading):]
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
		if strings.HasPrefix(section, "*Type:*") || !strings.Contains(section, "\n*Type:* ") {
			t.Errorf("section of %s lacks a description or a type:\n%s", name, section)
		}
	}
	if strings.Contains(md, "renderedConfig") {
		t.Error("the internal option renderedConfig is documented")
	}
	for _, want := range []string{
		"*Default:* `config.networking.hostName`", // defaultText, not the value
		"*Default:* `pkgs.panther-agent`",
		"*Example:* `{ runtimeDir = \"/run/panther-agent\"; }`",
		"*Default:* `[ \"tag:panther-agent\" ]`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}

// renderOptionDocs runs the Makefile's option-docs command.
func renderOptionDocs(t *testing.T, env nixtest.NixEnv) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command",
		"eval", "--raw", "-f", filepath.Join("stub", "eval.nix"), "optionsMarkdown")
	cmd.Env = env.Environ
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nix eval optionsMarkdown: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

// firstDifference describes the first line where want and got differ.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	line := func(lines []string, i int) string {
		if i >= len(lines) {
			return "(end of file)"
		}
		return fmt.Sprintf("%q", lines[i])
	}
	for i := 0; i < max(len(w), len(g)); i++ {
		if i >= len(w) || i >= len(g) || w[i] != g[i] {
			return fmt.Sprintf("first difference at line %d:\n  committed: %s\n  rendered:  %s", i+1, line(w, i), line(g, i))
		}
	}
	return ""
}
