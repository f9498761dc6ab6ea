package config

import (
	"flag"
	"fmt"
	"strings"
)

// Flags are command-line overrides of the config file, registered on a
// caller's flag.FlagSet by [RegisterFlags]. Only flags actually given on the
// command line (or set through fs.Set, as ff does for environment
// variables) override the file.
//
// List flags (-tag, -allowed-tag, -allowed-user, -trusted-key,
// -critical-unit) may be repeated or given comma-separated values; the
// first use replaces the file's list, and an empty value means "none".
// Health checks can only be set in the file.
type Flags struct {
	fs     *flag.FlagSet
	staged Config
	noLogs bool // staged -no-logs-no-support (the field is optional)
	apply  map[string]func(dst *Config)
}

// RegisterFlags registers one flag per config field on fs and returns the
// handle that applies them. It does not register -config: the caller owns
// the flag naming the file.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, apply: map[string]func(*Config){}}
	s := &f.staged
	bind(f, "hostname", &s.HostName, func(c *Config) *string { return &c.HostName }, "tailnet hostname (default: the machine's hostname)")
	bind(f, "flake-host", &s.FlakeHost, func(c *Config) *string { return &c.FlakeHost }, "nixosConfigurations attribute to build (default: the hostname)")
	bind(f, "state-dir", &s.StateDir, func(c *Config) *string { return &c.StateDir }, "state directory (default "+DefaultStateDir+")")
	bind(f, "control-url", &s.ControlURL, func(c *Config) *string { return &c.ControlURL }, "coordination server URL, e.g. Headscale's (default: Tailscale's)")
	bind(f, "auth-key-file", &s.AuthKeyFile, func(c *Config) *string { return &c.AuthKeyFile }, "file holding a tailnet auth key (default: none)")
	bindList(f, "tag", func(c *Config) *[]string { return &c.Tags }, "advertised tailnet tag, repeatable (default "+DefaultAgentTag+")")
	bindList(f, "allowed-tag", func(c *Config) *[]string { return &c.AllowedTags }, "peer tag allowed to call the agent, repeatable (default "+DefaultControllerTag+")")
	bindList(f, "allowed-user", func(c *Config) *[]string { return &c.AllowedUsers }, "login name allowed to call the agent, repeatable (default: none)")
	bindList(f, "trusted-key", func(c *Config) *[]string { return &c.TrustedKeys }, "trusted controller key panther-ed25519:<base64>, repeatable (required)")
	bind(f, "port", &s.Port, func(c *Config) *int { return &c.Port }, fmt.Sprintf("tailnet gRPC port (default %d)", DefaultPort))
	bind(f, "profile", &s.Profile, func(c *Config) *string { return &c.Profile }, "system nix profile (default "+DefaultProfile+")")
	bind(f, "current-system", &s.CurrentSystem, func(c *Config) *string { return &c.CurrentSystem }, "link to the running system (default "+DefaultCurrentSystem+")")
	bind(f, "runtime-dir", &s.RuntimeDir, func(c *Config) *string { return &c.RuntimeDir }, "directory emptied by a reboot but not by a restart (default "+DefaultRuntimeDir+")")
	bind(f, "confirm-timeout", &s.ConfirmTimeout, func(c *Config) *Duration { return &c.ConfirmTimeout }, fmt.Sprintf("confirmation wait before rollback (default %v)", DefaultConfirmTimeout))
	bind(f, "max-confirm-timeout", &s.MaxConfirmTimeout, func(c *Config) *Duration { return &c.MaxConfirmTimeout }, fmt.Sprintf("longest confirmation wait a request may ask for (default %v)", DefaultMaxConfirmTimeout))
	bind(f, "health-settle", &s.HealthSettle, func(c *Config) *Duration { return &c.HealthSettle }, fmt.Sprintf("pause after a switch before health checks (default %v)", DefaultHealthSettle))
	bind(f, "switch-timeout", &s.SwitchTimeout, func(c *Config) *Duration { return &c.SwitchTimeout }, fmt.Sprintf("longest run of switch-to-configuration before systemd stops it and the deployment rolls back (default %v)", DefaultSwitchTimeout))
	bindList(f, "critical-unit", func(c *Config) *[]string { return &c.CriticalUnits }, "systemd unit that must be active after a switch, repeatable (default: none)")
	bind(f, "log-retention", &s.LogRetention, func(c *Config) *int { return &c.LogRetention }, fmt.Sprintf("deployments whose logs are kept (default %d)", DefaultLogRetention))
	bind(f, "max-upload-bytes", &s.MaxUploadBytes, func(c *Config) *int64 { return &c.MaxUploadBytes }, fmt.Sprintf("largest flake source upload (default %d)", DefaultMaxUploadBytes))
	bind(f, "nix-extra-config", &s.NixExtraConfig, func(c *Config) *string { return &c.NixExtraConfig }, "extra NIX_CONFIG lines (default: none)")
	f.fs.BoolVar(&f.noLogs, "no-logs-no-support", false, "do not upload tsnet logs to Tailscale (default true with --control-url, else false)")
	f.apply["no-logs-no-support"] = func(dst *Config) { v := f.noLogs; dst.NoLogsNoSupport = &v }
	bind(f, "log-level", &s.LogLevel, func(c *Config) *string { return &c.LogLevel }, "trace, debug, info, warn, error or off (default "+DefaultLogLevel+")")
	bind(f, "log-json", &s.LogJSON, func(c *Config) *bool { return &c.LogJSON }, "log JSON lines (default false)")
	bind(f, "unit-name", &s.UnitName, func(c *Config) *string { return &c.UnitName }, "the agent's own systemd unit (default "+DefaultUnitName+")")
	bind(f, "systemd-run-path", &s.SystemdRunPath, func(c *Config) *string { return &c.SystemdRunPath }, "unused: transient units are started over D-Bus (default "+DefaultSystemdRunPath+")")
	return f
}

// bind registers one scalar flag whose value lands in staged and records
// how to copy it into a destination config.
func bind[T string | int | int64 | bool | Duration](f *Flags, name string, staged *T, field func(*Config) *T, usage string) {
	switch p := any(staged).(type) {
	case *string:
		f.fs.StringVar(p, name, "", usage)
	case *int:
		f.fs.IntVar(p, name, 0, usage)
	case *int64:
		f.fs.Int64Var(p, name, 0, usage)
	case *bool:
		f.fs.BoolVar(p, name, false, usage)
	case *Duration:
		f.fs.Var(p, name, usage+`; a Go duration or seconds`)
	}
	f.apply[name] = func(dst *Config) { *field(dst) = *staged }
}

func bindList(f *Flags, name string, field func(*Config) *[]string, usage string) {
	l := &listFlag{p: field(&f.staged)}
	f.fs.Var(l, name, usage)
	f.apply[name] = func(dst *Config) { *field(dst) = append([]string{}, *l.p...) }
}

// ApplyFlags copies every flag that was set into c, leaving the rest of c
// alone. Call it after fs.Parse and before [Config.ApplyDefaults].
func (f *Flags) ApplyFlags(c *Config) {
	f.fs.Visit(func(fl *flag.Flag) {
		if apply, ok := f.apply[fl.Name]; ok {
			apply(c)
		}
	})
}

// Load reads the file at path (none when path is ""), applies the flags that
// were set, then the defaults, and validates: the one call the agent's run
// command needs after fs.Parse.
func (f *Flags) Load(path string) (*Config, error) {
	c := &Config{HealthSettle: Duration{DefaultHealthSettle}}
	if path != "" {
		var err error
		if c, err = Read(path); err != nil {
			return nil, err
		}
	}
	f.ApplyFlags(c)
	return c.finish(path)
}

// listFlag is a repeatable, comma-splitting string list flag. Its first Set
// replaces the list; an empty value leaves an empty (not nil) list.
type listFlag struct {
	p   *[]string
	set bool
}

func (l *listFlag) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set {
		*l.p = []string{}
		l.set = true
	}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.p = append(*l.p, part)
		}
	}
	return nil
}
