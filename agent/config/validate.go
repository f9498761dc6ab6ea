package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pantheros/panther/internal/hostname"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/signing"
)

// Validate checks a config after [Config.ApplyDefaults] and returns an
// [*Error] listing every problem, or nil.
func (c *Config) Validate() error {
	v := &validator{}

	switch {
	case c.HostName == "":
		v.add("hostName", "required (it defaults to the machine's hostname, which could not be read)")
	case hostname.CheckTailnet(c.HostName) != nil:
		v.add("hostName", fmt.Sprintf("%q is not a hostname: use letters, digits, '-', '_' and '.'", c.HostName))
	}
	switch {
	case c.FlakeHost == "":
		v.add("flakeHost", "required")
	case nix.CheckHost(c.FlakeHost) != nil:
		v.add("flakeHost", fmt.Sprintf("%q is not a plain nixosConfigurations attribute name: use letters, digits, '-' and '_', not starting with '-', at most 128", c.FlakeHost))
	}
	v.absPath("stateDir", c.StateDir, true)
	v.absPath("profile", c.Profile, true)
	v.absPath("currentSystem", c.CurrentSystem, true)
	v.absPath("runtimeDir", c.RuntimeDir, true)
	v.absPath("authKeyFile", c.AuthKeyFile, false)
	if c.ControlURL != "" {
		u, err := url.Parse(c.ControlURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("controlUrl", fmt.Sprintf("%q is not an http(s) URL; leave it empty for Tailscale's control server", c.ControlURL))
		}
	}
	v.tags("tags", c.Tags)
	v.tags("allowedTags", c.AllowedTags)
	for i, u := range c.AllowedUsers {
		if u == "" || strings.ContainsFunc(u, isSpaceOrControl) {
			v.add(index("allowedUsers", i), fmt.Sprintf("%q is not a login name", u))
		}
	}
	if len(c.AllowedTags) == 0 && len(c.AllowedUsers) == 0 {
		v.add("allowedTags", "no caller could reach the agent: allow at least one tag or set allowedUsers")
	}
	if len(c.TrustedKeys) == 0 {
		v.add("trustedKeys", `at least one controller key is required ("panther-ed25519:<base64>", printed by pantherctl keygen)`)
	}
	seenKeys := map[string]int{}
	for i, k := range c.TrustedKeys {
		if _, err := signing.ParsePublicKey(k); err != nil {
			v.add(index("trustedKeys", i), fmt.Sprintf("not a key line: %v", err))
			continue
		}
		norm := strings.TrimSpace(k)
		if j, dup := seenKeys[norm]; dup {
			v.add(index("trustedKeys", i), fmt.Sprintf("same key as trustedKeys[%d]", j))
		}
		seenKeys[norm] = i
	}
	if c.Port < 1 || c.Port > 65535 {
		v.add("port", fmt.Sprintf("must be between 1 and 65535, got %d", c.Port))
	}
	v.positive("confirmTimeout", c.ConfirmTimeout)
	v.positive("maxConfirmTimeout", c.MaxConfirmTimeout)
	v.positive("switchTimeout", c.SwitchTimeout)
	if c.HealthSettle.Duration < 0 {
		v.add("healthSettle", fmt.Sprintf("must be zero or a positive duration, got %v", c.HealthSettle.Duration))
	}
	if c.ConfirmTimeout.Duration > 0 && c.MaxConfirmTimeout.Duration > 0 && c.ConfirmTimeout.Duration > c.MaxConfirmTimeout.Duration {
		v.add("confirmTimeout", fmt.Sprintf("%v is longer than maxConfirmTimeout (%v)", c.ConfirmTimeout.Duration, c.MaxConfirmTimeout.Duration))
	}
	for i, u := range c.CriticalUnits {
		if !unitName(u) {
			v.add(index("criticalUnits", i), fmt.Sprintf("%q is not a systemd unit name like \"nginx.service\"", u))
		}
	}
	if c.LogRetention < 1 {
		v.add("logRetention", fmt.Sprintf("must keep at least 1 deployment, got %d", c.LogRetention))
	}
	if c.MaxUploadBytes < 1 {
		v.add("maxUploadBytes", fmt.Sprintf("must be positive, got %d", c.MaxUploadBytes))
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "error", "off":
	default:
		v.add("logLevel", fmt.Sprintf("%q is not one of trace, debug, info, warn, error, off", c.LogLevel))
	}
	if !strings.HasSuffix(c.UnitName, ".service") || !unitName(c.UnitName) {
		v.add("unitName", fmt.Sprintf("%q is not a service unit name like \"panther-agent.service\"", c.UnitName))
	}
	switch {
	case c.SystemdRunPath == "":
		v.add("systemdRunPath", "required")
	case strings.Contains(c.SystemdRunPath, "/"):
		v.absPath("systemdRunPath", c.SystemdRunPath, true)
	}
	names := map[string]int{}
	for i, h := range c.HealthChecks {
		p := index("healthChecks", i)
		if h.Name == "" {
			v.add(p+".name", "required")
		} else if j, dup := names[h.Name]; dup {
			v.add(p+".name", fmt.Sprintf("%q is already the name of healthChecks[%d]", h.Name, j))
		} else {
			names[h.Name] = i
		}
		h.validate(v, p)
	}
	c.validateObservability(v)
	c.validateFleetCache(v)
	if len(v.problems) == 0 {
		return nil
	}
	return &Error{Problems: v.problems}
}

func (h *HealthCheck) validate(v *validator, p string) {
	only := func(field string, set bool, typ string) {
		if set {
			v.add(p+"."+field, fmt.Sprintf("only used by %s checks; remove it from this %s check", typ, h.Type))
		}
	}
	switch h.Type {
	case CheckHTTP:
		u, err := url.Parse(h.URL)
		switch {
		case h.URL == "":
			v.add(p+".url", "required for http checks")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add(p+".url", fmt.Sprintf("%q is not an http(s) URL", h.URL))
		}
		if h.ExpectStatus < 100 || h.ExpectStatus > 599 {
			v.add(p+".expectStatus", fmt.Sprintf("must be an HTTP status between 100 and 599, got %d", h.ExpectStatus))
		}
		only("address", h.Address != "", CheckTCP)
		only("command", len(h.Command) > 0, CheckCommand)
	case CheckTCP:
		if h.Address == "" {
			v.add(p+".address", "required for tcp checks")
		} else if host, port, err := net.SplitHostPort(h.Address); err != nil || host == "" || !validPort(port) {
			v.add(p+".address", fmt.Sprintf("%q is not host:port", h.Address))
		}
		only("url", h.URL != "", CheckHTTP)
		only("expectStatus", h.ExpectStatus != 0, CheckHTTP)
		only("command", len(h.Command) > 0, CheckCommand)
	case CheckCommand:
		if len(h.Command) == 0 || h.Command[0] == "" {
			v.add(p+".command", "required for command checks: the program and its arguments")
		}
		only("url", h.URL != "", CheckHTTP)
		only("expectStatus", h.ExpectStatus != 0, CheckHTTP)
		only("address", h.Address != "", CheckTCP)
	case "":
		v.add(p+".type", "required: http, tcp or command")
	default:
		v.add(p+".type", fmt.Sprintf("%q is not one of http, tcp, command", h.Type))
	}
	v.positive(p+".timeout", h.Timeout)
	v.positive(p+".interval", h.Interval)
	if h.Retries < 0 {
		v.add(p+".retries", fmt.Sprintf("must not be negative, got %d", h.Retries))
	}
}

type validator struct{ problems []Problem }

func (v *validator) add(field, msg string) {
	v.problems = append(v.problems, Problem{Field: field, Message: msg})
}

func (v *validator) positive(field string, d Duration) {
	if d.Duration <= 0 {
		v.add(field, fmt.Sprintf("must be a positive duration, got %v", d.Duration))
	}
}

func (v *validator) absPath(field, p string, required bool) {
	switch {
	case p == "":
		if required {
			v.add(field, "required")
		}
	case !filepath.IsAbs(p):
		v.add(field, fmt.Sprintf("%q is not an absolute path", p))
	case filepath.Clean(p) != p:
		v.add(field, fmt.Sprintf("%q is not a clean path (write %q)", p, filepath.Clean(p)))
	}
}

func (v *validator) tags(field string, tags []string) {
	for i, t := range tags {
		if !validTag(t) {
			v.add(index(field, i), fmt.Sprintf("%q is not a tailnet tag like \"tag:panther-agent\"", t))
		}
	}
}

func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// validTag follows Tailscale's rule: "tag:", a letter, then letters, digits
// and dashes.
func validTag(t string) bool {
	name, ok := strings.CutPrefix(t, "tag:")
	if !ok || name == "" || !isLetter(rune(name[0])) {
		return false
	}
	for _, r := range name {
		if !isLetter(r) && !isDigit(r) && r != '-' {
			return false
		}
	}
	return true
}

// unitName admits systemd unit names with a known type suffix.
func unitName(s string) bool {
	if len(s) > 255 || strings.ContainsFunc(s, func(r rune) bool { return r == '/' || isSpaceOrControl(r) }) {
		return false
	}
	for _, suf := range []string{".service", ".socket", ".target", ".mount", ".automount", ".timer", ".path", ".device", ".swap", ".scope", ".slice"} {
		if prefix, ok := strings.CutSuffix(s, suf); ok && prefix != "" {
			return true
		}
	}
	return false
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isDigit(r rune) bool  { return r >= '0' && r <= '9' }
func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}
