package config

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// evalObservability evaluates the module for a host with the given
// services.panther-agent attributes (module_refuse_test.go's evalHost).
func evalObservability(t *testing.T, agent, attr string) ([]byte, error) {
	t.Helper()
	out, stderr, err := evalHost(t, "{ "+agent+" }", attr)
	if err != nil {
		return nil, &exec.ExitError{Stderr: []byte(stderr)}
	}
	return []byte(out), nil
}

func TestModuleRendersMetricsAndHooks(t *testing.T) {
	out, err := evalObservability(t, `metrics.port = 9464; resultHooks = { command = [ "/bin/notify" "--all" ]; webhookUrl = "https://hooks.example.com/p?t=1"; webhookAttempts = 5; };`, "json")
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
	out, err = evalObservability(t, ``, "json")
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
			out, err := evalObservability(t, tc.agent, "failedAssertions")
			if err != nil {
				t.Fatalf("eval: %s", err.(*exec.ExitError).Stderr)
			}
			if !strings.Contains(string(out), tc.msg) {
				t.Errorf("failed assertions %s, want one about %s", out, tc.msg)
			}
		})
	}
	for _, bad := range []string{`metrics.port = 0;`, `resultHooks.webhookAttempts = 11;`} {
		if _, err := evalObservability(t, bad, "config"); err == nil {
			t.Errorf("%s: evaluation succeeded", bad)
		}
	}
}
