// Package config loads, defaults and validates panther-agent's JSON config
// file, the file the NixOS module (nixos-module/) renders to
// /etc/panther/agent.json, and lets command-line flags override it.
//
// The file is strict: an unknown or misspelled key, a value of the wrong type
// or trailing data is an error that names the key. Every problem found by
// [Config.Validate] names the JSON key (the same name as the NixOS option) and
// says what is wrong in words.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pantheros/panther/internal/defaults"
)

// Defaults applied by [Config.ApplyDefaults] to fields left unset.
const (
	DefaultStateDir            = "/var/lib/panther-agent"
	DefaultPort                = defaults.AgentPort
	DefaultProfile             = "/nix/var/nix/profiles/system"
	DefaultCurrentSystem       = "/run/current-system"
	DefaultRuntimeDir          = "/run/panther-agent"
	DefaultConfirmTimeout      = defaults.ConfirmTimeout
	DefaultMaxConfirmTimeout   = defaults.MaxConfirmTimeout
	DefaultHealthSettle        = 5 * time.Second
	DefaultSwitchTimeout       = defaults.SwitchTimeout
	DefaultLogRetention        = 50
	DefaultMaxUploadBytes      = int64(1) << 30
	DefaultFleetCacheStartWait = 2 * time.Minute
	DefaultLogLevel            = "info"
	DefaultUnitName            = "panther-agent.service"
	DefaultSystemdRunPath      = "systemd-run"
	DefaultAgentTag            = "tag:panther-agent"
	DefaultControllerTag       = "tag:panther-controller"

	// DefaultCheckTimeout bounds one attempt of a health check.
	DefaultCheckTimeout = 5 * time.Second
	// DefaultCheckInterval is the pause between attempts of a health check.
	DefaultCheckInterval = 2 * time.Second
	// DefaultExpectStatus is the HTTP status an http check wants.
	DefaultExpectStatus = 200
)

// Health check types.
const (
	CheckHTTP    = "http"
	CheckTCP     = "tcp"
	CheckCommand = "command"
)

// ErrInvalid is wrapped by every error about the content of a config: bad
// JSON, an unknown key, a wrong type or a failed validation. A missing or
// unreadable file wraps the underlying fs error instead.
var ErrInvalid = errors.New("invalid agent config")

// Config is the agent's configuration. A field left out of the file (or set
// to null) gets its default from [Config.ApplyDefaults]; for lists, a missing
// key means the default while an explicit [] means "none".
type Config struct {
	// HostName is the agent's tailnet hostname. Default: os.Hostname().
	HostName string `json:"hostName"`
	// FlakeHost is the nixosConfigurations attribute the agent builds,
	// and the only one it accepts a request for. Default: HostName.
	FlakeHost string `json:"flakeHost"`
	// StateDir holds the tailnet state, the journal and uploaded sources.
	// Default: "/var/lib/panther-agent".
	StateDir string `json:"stateDir"`
	// ControlURL is the coordination server. Default: "" (Tailscale's);
	// set it to a Headscale URL otherwise.
	ControlURL string `json:"controlUrl"`
	// AuthKeyFile holds a tailnet auth key used on first login.
	// Default: "" (none; an already-logged-in state dir needs none).
	AuthKeyFile string `json:"authKeyFile"`
	// Tags are the ACL tags the agent's node advertises.
	// Default: ["tag:panther-agent"]; [] advertises none.
	Tags []string `json:"tags"`
	// AllowedTags are the peer tags allowed to call the agent.
	// Default: ["tag:panther-controller"]; [] allows no tag.
	AllowedTags []string `json:"allowedTags"`
	// AllowedUsers are the tailnet login names allowed to call the agent
	// from untagged nodes. Default: none.
	AllowedUsers []string `json:"allowedUsers"`
	// TrustedKeys are the controller public keys whose signatures the agent
	// accepts, each "panther-ed25519:<base64>". Required: at least one.
	TrustedKeys []string `json:"trustedKeys"`
	// Port is the tailnet-only gRPC port. Default: 7443.
	Port int `json:"port"`
	// Profile is the nix profile of the system. Default:
	// "/nix/var/nix/profiles/system".
	Profile string `json:"profile"`
	// CurrentSystem is the link to the running system. Default:
	// "/run/current-system".
	CurrentSystem string `json:"currentSystem"`
	// RuntimeDir is a directory that a reboot empties (a tmpfs) and an
	// agent restart does not; the agent tells a reboot from a restart by it.
	// Default: "/run/panther-agent".
	RuntimeDir string `json:"runtimeDir"`
	// ConfirmTimeout is how long a switched generation waits for the
	// controller's confirmation when the request names no timeout before the
	// agent rolls back. Default: 60s.
	ConfirmTimeout Duration `json:"confirmTimeout"`
	// MaxConfirmTimeout caps the confirmation timeout a request may ask for.
	// Default: 15m.
	MaxConfirmTimeout Duration `json:"maxConfirmTimeout"`
	// HealthSettle is the pause after a switch before health is judged.
	// Default: 5s.
	HealthSettle Duration `json:"healthSettle"`
	// SwitchTimeout is how long switch-to-configuration (a switch, a
	// rollback's switch or a dry-activate) may run in its transient unit;
	// past it systemd stops the unit, which frees switch-to-configuration's
	// lock, and the deployment rolls back. Default: 10m.
	SwitchTimeout Duration `json:"switchTimeout"`
	// CriticalUnits must be active after a switch. Default: none.
	CriticalUnits []string `json:"criticalUnits"`
	// HealthChecks run after a switch; one failing check fails the
	// deployment. Default: none.
	HealthChecks []HealthCheck `json:"healthChecks"`
	// LogRetention is how many deployments' logs are kept. Default: 50.
	LogRetention int `json:"logRetention"`
	// MaxUploadBytes caps an uploaded flake source archive. Default: 1 GiB.
	MaxUploadBytes int64 `json:"maxUploadBytes"`
	// NixExtraConfig is appended to NIX_CONFIG for every nix call.
	// Default: "".
	NixExtraConfig string `json:"nixExtraConfig"`
	// NoLogsNoSupport stops tsnet from uploading its logs to Tailscale's
	// log servers. Default: true when ControlURL is set (a self-hosted
	// control server has no use for Tailscale's logs), false otherwise.
	NoLogsNoSupport *bool `json:"noLogsNoSupport,omitempty"`
	// LogLevel is one of trace, debug, info, warn, error, off.
	// Default: "info".
	LogLevel string `json:"logLevel"`
	// LogJSON writes logs as JSON lines. Default: false.
	LogJSON bool `json:"logJSON"`
	// UnitName is the agent's own systemd unit. Default:
	// "panther-agent.service".
	UnitName string `json:"unitName"`
	// SystemdRunPath is no longer used: the agent starts its transient units
	// over D-Bus. It is still accepted so that existing files load.
	// Default: "systemd-run".
	SystemdRunPath string `json:"systemdRunPath"`

	// Metrics and result hooks (observability.go).

	// Metrics configures the tailnet-only Prometheus endpoint. Default: off.
	Metrics Metrics `json:"metrics"`
	// ResultHooks run on each final deployment result. Default: none.
	ResultHooks ResultHooks `json:"resultHooks"`

	// FleetCache: build once per closure, substitute from peers
	// (fleetcache.go). Default: off.
	FleetCache FleetCache `json:"fleetCache"`
}

// HealthCheck is one check run after a switch. Type selects which of URL
// (http), Address (tcp) or Command (command) it uses; the others must be
// left empty.
type HealthCheck struct {
	// Name identifies the check in logs and results; required and unique.
	Name string `json:"name"`
	// Type is "http", "tcp" or "command"; required.
	Type string `json:"type"`
	// URL is fetched with GET by an http check; required for http.
	URL string `json:"url"`
	// ExpectStatus is the status an http check wants. Default: 200 (http
	// only).
	ExpectStatus int `json:"expectStatus"`
	// Address is "host:port" dialed by a tcp check; required for tcp.
	Address string `json:"address"`
	// Command is the argv run by a command check, which passes when it exits
	// 0; required for command.
	Command []string `json:"command"`
	// Timeout bounds one attempt. Default: 5s.
	Timeout Duration `json:"timeout"`
	// Interval is the pause between attempts. Default: 2s.
	Interval Duration `json:"interval"`
	// Retries is how many more attempts follow a failed one before the
	// check fails. Default: 0 (a single attempt).
	Retries int `json:"retries"`
}

// Load reads the config file at path, applies defaults and validates it.
// To let flags override the file, use [Flags.Load] instead: it applies the
// flags before the defaults, so derived defaults (FlakeHost from HostName)
// follow an overridden value.
func Load(path string) (*Config, error) {
	c, err := Read(path)
	if err != nil {
		return nil, err
	}
	return c.finish(path)
}

// Read reads and strictly decodes the config file at path without applying
// defaults or validating.
func Read(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// finish applies defaults and validates, naming the file in the error.
func (c *Config) finish(path string) (*Config, error) {
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return c, nil
}

// NoLogs reports whether tsnet's log upload is off: NoLogsNoSupport when
// set, else whether ControlURL is (the default ApplyDefaults fills in).
func (c *Config) NoLogs() bool {
	if c.NoLogsNoSupport != nil {
		return *c.NoLogsNoSupport
	}
	return c.ControlURL != ""
}

// ApplyDefaults fills every unset field with its default. It leaves HostName
// empty when os.Hostname fails, which Validate then reports.
func (c *Config) ApplyDefaults() {
	if c.HostName == "" {
		if h, err := os.Hostname(); err == nil {
			c.HostName = h
		}
	}
	if c.FlakeHost == "" {
		c.FlakeHost = c.HostName
	}
	if c.NoLogsNoSupport == nil {
		noLogs := c.ControlURL != ""
		c.NoLogsNoSupport = &noLogs
	}
	setString(&c.StateDir, DefaultStateDir)
	setString(&c.Profile, DefaultProfile)
	setString(&c.CurrentSystem, DefaultCurrentSystem)
	setString(&c.RuntimeDir, DefaultRuntimeDir)
	setString(&c.LogLevel, DefaultLogLevel)
	setString(&c.UnitName, DefaultUnitName)
	setString(&c.SystemdRunPath, DefaultSystemdRunPath)
	if c.Tags == nil {
		c.Tags = []string{DefaultAgentTag}
	}
	if c.AllowedTags == nil {
		c.AllowedTags = []string{DefaultControllerTag}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	setDuration(&c.ConfirmTimeout, DefaultConfirmTimeout)
	setDuration(&c.MaxConfirmTimeout, DefaultMaxConfirmTimeout)
	setDuration(&c.SwitchTimeout, DefaultSwitchTimeout)
	// HealthSettle is not defaulted here: 0 ("no settle") is a valid
	// setting; Parse and Flags.Load start from DefaultHealthSettle.
	if c.LogRetention == 0 {
		c.LogRetention = DefaultLogRetention
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	for i := range c.HealthChecks {
		c.HealthChecks[i].applyDefaults()
	}
	c.applyObservabilityDefaults()
	c.applyFleetCacheDefaults()
}

func (h *HealthCheck) applyDefaults() {
	setDuration(&h.Timeout, DefaultCheckTimeout)
	setDuration(&h.Interval, DefaultCheckInterval)
	if h.Type == CheckHTTP && h.ExpectStatus == 0 {
		h.ExpectStatus = DefaultExpectStatus
	}
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDuration(p *Duration, def time.Duration) {
	if p.Duration == 0 {
		p.Duration = def
	}
}
