package config

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// evalHost evaluates attr of the module's stub evaluation for a host module
// whose services.panther-agent body is agent (besides enable and a key).
func evalHost(t *testing.T, agent, attr string) ([]byte, error) {
	t.Helper()
	bin := requireNix(t)
	host := filepath.Join(t.TempDir(), "host.nix")
	src := `{ ... }: { networking.hostName = "web1"; services.panther-agent = { enable = true; trustedKeys = [ "` + testKey + `" ]; ` + agent + ` }; }`
	if err := os.WriteFile(host, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--eval", "--strict", "--json", "--arg", "host", host,
		filepath.Join(repoRoot(t), "nixos-module", "stub", "eval.nix"), "-A", attr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &exec.ExitError{Stderr: stderr.Bytes()}
	}
	return out, nil
}

func TestModuleRendersMetricsAndHooks(t *testing.T) {
	out, err := evalHost(t, `metrics.port = 9464; resultHooks = { command = [ "/bin/notify" "--all" ]; webhookUrl = "https://hooks.example.com/p?t=1"; webhookAttempts = 5; };`, "json")
	if err != nil {
		t.Fatalf("eval: %s", err.(*exec.ExitError).Stderr)
	}
	var rendered string
	json.Unmarshal(out, &rendered)
	c, err := Parse([]byte(rendered))
	if err != nil {
		t.Fatalf("the agent refuses the rendered config: %v\n%s", err, rendered)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the agent refuses the rendered config: %v\n%s", err, rendered)
	}
	if c.Metrics.Port != 9464 || strings.Join(c.ResultHooks.Command, " ") != "/bin/notify --all" ||
		c.ResultHooks.WebhookURL != "https://hooks.example.com/p?t=1" || c.ResultHooks.WebhookAttempts != 5 ||
		c.ResultHooks.WebhookTimeout.Duration != DefaultHookWebhookTimeout {
		t.Errorf("rendered %s", rendered)
	}
	out, err = evalHost(t, ``, "json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "metrics") || strings.Contains(string(out), "resultHooks") {
		t.Errorf("unset options are rendered: %s", out)
	}
}

func TestModuleRefusesBadMetricsAndHooks(t *testing.T) {
	tests := []struct{ name, agent, msg string }{
		{"metrics on the gRPC port", `metrics.port = 7443;`, "metrics.port"},
		{"webhook without scheme", `resultHooks.webhookUrl = "hooks.example.com/x";`, "resultHooks.webhookUrl"},
		{"webhook with fragment", `resultHooks.webhookUrl = "https://hooks.example.com/#x";`, "resultHooks.webhookUrl"},
		{"empty command", `resultHooks.command = [ ];`, "resultHooks.command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := evalHost(t, tc.agent, "failedAssertions")
			if err != nil {
				t.Fatalf("eval: %s", err.(*exec.ExitError).Stderr)
			}
			if !strings.Contains(string(out), tc.msg) {
				t.Errorf("failed assertions %s, want one about %s", out, tc.msg)
			}
		})
	}
	for _, bad := range []string{`metrics.port = 0;`, `resultHooks.webhookAttempts = 11;`} {
		if _, err := evalHost(t, bad, "config"); err == nil {
			t.Errorf("%s: evaluation succeeded", bad)
		}
	}
}
