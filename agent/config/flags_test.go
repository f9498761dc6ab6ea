package config

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseFlags registers the config flags on a fresh FlagSet and parses args.
func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f
}

func TestFlagsOverrideFile(t *testing.T) {
	file := `{
		"hostName": "web1",
		"port": 7000,
		"tags": ["tag:from-file"],
		"trustedKeys": ["` + testKey + `"],
		"confirmTimeout": "2m",
		"logJSON": true,
		"criticalUnits": ["nginx.service"]
	}`
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "no flags keeps the file",
			check: func(t *testing.T, c *Config) {
				if c.Port != 7000 || c.HostName != "web1" || !c.LogJSON || c.ConfirmTimeout.Duration != 2*time.Minute {
					t.Errorf("got %+v, want the file's values", c)
				}
			},
		},
		{
			name: "scalars",
			args: []string{"-port", "8000", "-log-level=debug", "-log-json=false", "-max-upload-bytes", "1024", "-no-logs-no-support"},
			check: func(t *testing.T, c *Config) {
				if c.Port != 8000 || c.LogLevel != "debug" || c.LogJSON || c.MaxUploadBytes != 1024 || !c.NoLogs() {
					t.Errorf("got port %d level %q json %v upload %d nologs %v", c.Port, c.LogLevel, c.LogJSON, c.MaxUploadBytes, c.NoLogs())
				}
				if c.HostName != "web1" || len(c.Tags) != 1 {
					t.Errorf("unset flags changed the file's values: %+v", c)
				}
			},
		},
		{
			name: "hostname moves the flakeHost default",
			args: []string{"-hostname", "web2"},
			check: func(t *testing.T, c *Config) {
				if c.HostName != "web2" || c.FlakeHost != "web2" {
					t.Errorf("HostName %q FlakeHost %q, want web2 for both", c.HostName, c.FlakeHost)
				}
			},
		},
		{
			name: "durations as Go strings or seconds",
			args: []string{"-confirm-timeout", "30", "-health-settle", "1m"},
			check: func(t *testing.T, c *Config) {
				if c.ConfirmTimeout.Duration != 30*time.Second || c.HealthSettle.Duration != time.Minute {
					t.Errorf("confirm %v settle %v, want 30s and 1m", c.ConfirmTimeout, c.HealthSettle)
				}
			},
		},
		{
			name: "repeated and comma separated list flags replace the file's list",
			args: []string{"-tag", "tag:a,tag:b", "-tag", "tag:c", "-trusted-key", otherKey},
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c.Tags, []string{"tag:a", "tag:b", "tag:c"}) {
					t.Errorf("Tags = %q", c.Tags)
				}
				if !reflect.DeepEqual(c.TrustedKeys, []string{otherKey}) {
					t.Errorf("TrustedKeys = %q", c.TrustedKeys)
				}
			},
		},
		{
			name: "an empty list flag means none",
			args: []string{"-critical-unit="},
			check: func(t *testing.T, c *Config) {
				if c.CriticalUnits == nil || len(c.CriticalUnits) != 0 {
					t.Errorf("CriticalUnits = %#v, want empty", c.CriticalUnits)
				}
			},
		},
		{
			name: "strings",
			args: []string{"-flake-host", "web", "-state-dir", "/srv/panther", "-control-url", "https://hs.example.com", "-auth-key-file", "/run/key",
				"-allowed-tag", "tag:ops", "-allowed-user", "alice@example.com", "-profile", "/nix/var/nix/profiles/test",
				"-current-system", "/run/booted-system", "-runtime-dir", "/run/panther-test",
				"-max-confirm-timeout", "1h", "-log-retention", "5", "-nix-extra-config", "max-jobs = 1",
				"-unit-name", "agent.service", "-systemd-run-path", "/bin/systemd-run"},
			check: func(t *testing.T, c *Config) {
				want := validConfig()
				want.HostName, want.FlakeHost, want.StateDir, want.ControlURL, want.AuthKeyFile = "web1", "web", "/srv/panther", "https://hs.example.com", "/run/key"
				want.Port, want.Tags, want.AllowedTags, want.AllowedUsers = 7000, []string{"tag:from-file"}, []string{"tag:ops"}, []string{"alice@example.com"}
				want.Profile, want.ConfirmTimeout, want.MaxConfirmTimeout = "/nix/var/nix/profiles/test", Duration{2 * time.Minute}, Duration{time.Hour}
				want.CriticalUnits, want.LogRetention, want.NixExtraConfig, want.LogJSON = []string{"nginx.service"}, 5, "max-jobs = 1", true
				want.UnitName, want.SystemdRunPath = "agent.service", "/bin/systemd-run"
				want.CurrentSystem, want.RuntimeDir = "/run/booted-system", "/run/panther-test"
				want.NoLogsNoSupport = new(true) // the default with a control URL
				if !reflect.DeepEqual(c, want) {
					t.Errorf("\n got %+v\nwant %+v", c, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseFlags(t, tt.args...)
			c, err := f.Load(writeConfig(t, file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestFlagsWithoutFile(t *testing.T) {
	f := parseFlags(t, "-hostname", "web1", "-trusted-key", testKey)
	c, err := f.Load("")
	if err != nil {
		t.Fatalf("Load without a file: %v", err)
	}
	if c.HostName != "web1" || c.Port != DefaultPort {
		t.Errorf("got %+v, want flags plus defaults", c)
	}
}

func TestFlagsCanRepairFile(t *testing.T) {
	// A file that alone is invalid (no trusted key) is completed by a flag.
	f := parseFlags(t, "-trusted-key", testKey)
	if _, err := f.Load(writeConfig(t, `{"hostName": "web1"}`)); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestFlagsInvalidResult(t *testing.T) {
	f := parseFlags(t, "-port", "0", "-log-level", "loud")
	_, err := f.Load(writeConfig(t, `{"hostName": "web1", "port": 1, "trustedKeys": ["`+testKey+`"]}`))
	ce := problems(t, err)
	// -port 0 restores the default, so only the log level is wrong.
	if got := ce.Fields(); !reflect.DeepEqual(got, []string{"logLevel"}) {
		t.Errorf("fields = %q, want logLevel (%v)", got, err)
	}
}

func TestFlagParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"bad duration", []string{"-confirm-timeout", "soon"}, "Go duration"},
		{"bad port", []string{"-port", "x"}, "invalid value"},
		{"unknown flag", []string{"-colour"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			RegisterFlags(fs)
			err := fs.Parse(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestFlagsHelpStatesDefaults(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	RegisterFlags(fs)
	fs.PrintDefaults()
	for _, want := range []string{"-port int", "default 7443", "-confirm-timeout value", "default 1m0s", "-trusted-key value", "(required)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not contain %q:\n%s", want, out.String())
		}
	}
}
