package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of the result hooks (see [ResultHooks]).
const (
	DefaultHookCommandTimeout  = 30 * time.Second
	DefaultHookWebhookTimeout  = 10 * time.Second
	DefaultHookWebhookAttempts = 3
	// MaxHookWebhookAttempts caps resultHooks.webhookAttempts.
	MaxHookWebhookAttempts = 10
)

// Metrics configures the agent's Prometheus metrics endpoint. It is served
// on the tailnet only (never on the host's interfaces), on its own port,
// to the same peers as the gRPC API (allowedTags, allowedUsers).
type Metrics struct {
	// Port is the tailnet port of GET /metrics. Default: 0, no endpoint.
	Port int `json:"port"`
}

// ResultHooks run on each final deployment result: a command, a webhook,
// or both. They can only be set in the config file.
type ResultHooks struct {
	// Command is the program and arguments run with the result as JSON on
	// stdin and as PANTHER_* variables. Default: none.
	Command []string `json:"command"`
	// CommandTimeout bounds one run of Command. Default: 30s.
	CommandTimeout Duration `json:"commandTimeout"`
	// WebhookURL receives a POST of the result as JSON. It leaves the
	// tailnet if it points elsewhere. Default: none.
	WebhookURL string `json:"webhookUrl"`
	// WebhookTimeout bounds one attempt of the POST. Default: 10s.
	WebhookTimeout Duration `json:"webhookTimeout"`
	// WebhookAttempts is how many times the POST is tried (5xx, 429 and
	// network errors are retried). Default: 3, at most 10.
	WebhookAttempts int `json:"webhookAttempts"`
}

// Enabled reports whether a command or a webhook is configured.
func (h ResultHooks) Enabled() bool { return len(h.Command) > 0 || h.WebhookURL != "" }

func (c *Config) applyObservabilityDefaults() {
	h := &c.ResultHooks
	setDuration(&h.CommandTimeout, DefaultHookCommandTimeout)
	setDuration(&h.WebhookTimeout, DefaultHookWebhookTimeout)
	if h.WebhookAttempts == 0 {
		h.WebhookAttempts = DefaultHookWebhookAttempts
	}
}

func (c *Config) validateObservability(v *validator) {
	switch p := c.Metrics.Port; {
	case p == 0:
	case p < 0 || p > 65535:
		v.add("metrics.port", fmt.Sprintf("must be between 1 and 65535 (or 0 for no endpoint), got %d", p))
	case p == c.Port:
		v.add("metrics.port", fmt.Sprintf("%d is already the gRPC port (port); pick another", p))
	}
	h := c.ResultHooks
	if len(h.Command) > 0 && strings.TrimSpace(h.Command[0]) == "" {
		v.add("resultHooks.command", "the first element must be the program to run")
	}
	if h.WebhookURL != "" {
		if msg := webhookURLProblem(h.WebhookURL); msg != "" {
			v.add("resultHooks.webhookUrl", msg)
		}
	}
	v.positive("resultHooks.commandTimeout", h.CommandTimeout)
	v.positive("resultHooks.webhookTimeout", h.WebhookTimeout)
	if h.WebhookAttempts < 1 || h.WebhookAttempts > MaxHookWebhookAttempts {
		v.add("resultHooks.webhookAttempts", fmt.Sprintf("must be between 1 and %d, got %d", MaxHookWebhookAttempts, h.WebhookAttempts))
	}
}

// webhookURLProblem says what is wrong with a webhook URL ("" if nothing).
// agent/hooks applies the same rules when the runner starts.
func webhookURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case strings.ContainsFunc(s, isSpaceOrControl):
		return fmt.Sprintf("%q contains spaces or control characters", s)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return fmt.Sprintf("%q is not an http(s) URL with a host", s)
	case strings.Contains(s, "#"):
		return fmt.Sprintf("%q has a fragment (#...), which is never sent", s)
	}
	return ""
}
