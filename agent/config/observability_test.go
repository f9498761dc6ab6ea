package config

import (
	"strings"
	"testing"
	"time"
)

func TestObservabilityConfig(t *testing.T) {
	ok := `{"trustedKeys": ["` + testKey + `"], `
	c, err := Load(writeConfig(t, ok+`"metrics": {"port": 9090}, "resultHooks": {"command": ["/bin/notify", "-x"],
		"webhookUrl": "https://hooks.example.com/panther", "webhookTimeout": "3s", "webhookAttempts": 5}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Port != 9090 || !c.ResultHooks.Enabled() || c.ResultHooks.WebhookTimeout.Duration != 3*time.Second ||
		c.ResultHooks.CommandTimeout.Duration != DefaultHookCommandTimeout || c.ResultHooks.WebhookAttempts != 5 {
		t.Errorf("loaded %+v %+v", c.Metrics, c.ResultHooks)
	}

	tests := []struct {
		name, json, field, msg string
	}{
		{"metrics port out of range", `"metrics": {"port": 70000}`, "metrics.port", "between 1 and 65535"},
		{"metrics port is the gRPC port", `"metrics": {"port": 7443}`, "metrics.port", "already the gRPC port"},
		{"webhook without scheme", `"resultHooks": {"webhookUrl": "hooks.example.com/x"}`, "resultHooks.webhookUrl", "not an http(s) URL"},
		{"webhook other scheme", `"resultHooks": {"webhookUrl": "file:///etc/passwd"}`, "resultHooks.webhookUrl", "not an http(s) URL"},
		{"webhook fragment", `"resultHooks": {"webhookUrl": "https://h.example.com/#x"}`, "resultHooks.webhookUrl", "fragment"},
		{"webhook space", `"resultHooks": {"webhookUrl": "https://h.example.com/a b"}`, "resultHooks.webhookUrl", "spaces"},
		{"empty program", `"resultHooks": {"command": [""]}`, "resultHooks.command", "program"},
		{"too many attempts", `"resultHooks": {"webhookAttempts": 11}`, "resultHooks.webhookAttempts", "between 1 and 10"},
		{"negative timeout", `"resultHooks": {"commandTimeout": "-1s"}`, "resultHooks.commandTimeout", "positive"},
		{"unknown key", `"resultHooks": {"url": "https://h.example.com/"}`, "resultHooks.url", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, ok+tc.json+`}`))
			if err == nil {
				t.Fatal("accepted")
			}
			checkProblem(t, err, tc.field, tc.msg)
		})
	}
}

// checkProblem wants err to name field and, when msg is set, say msg.
func checkProblem(t *testing.T, err error, field, msg string) {
	t.Helper()
	if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q, want it to name %s and say %q", err, field, msg)
	}
}
