package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testKey  = "panther-ed25519:ziNh8gNkF3ILRVEAspoHseQjpJeqbXQb+j8442Qd1ao="
	otherKey = "panther-ed25519:NB9ijLRYoN7ZrAZ4kItGV9kSTgyVAVeOQXnuyY3kKNY="
)

// writeConfig writes content to a config file in a fresh temp dir.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	return path
}

// problems returns the *Error inside err, failing the test if there is none.
func problems(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %q does not wrap ErrInvalid", err)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %q is not a *config.Error", err)
	}
	return ce
}

func TestLoadAppliesDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("os.Hostname fails here, so the hostName default cannot be tested: %v", err)
	}
	got, err := Load(writeConfig(t, `{"trustedKeys": ["`+testKey+`"]}`))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		HostName:          host,
		FlakeHost:         host,
		StateDir:          "/var/lib/panther-agent",
		Tags:              []string{"tag:panther-agent"},
		AllowedTags:       []string{"tag:panther-controller"},
		TrustedKeys:       []string{testKey},
		Port:              7443,
		Profile:           "/nix/var/nix/profiles/system",
		CurrentSystem:     "/run/current-system",
		RuntimeDir:        "/run/panther-agent",
		ConfirmTimeout:    Duration{60 * time.Second},
		MaxConfirmTimeout: Duration{15 * time.Minute},
		HealthSettle:      Duration{5 * time.Second},
		SwitchTimeout:     Duration{10 * time.Minute},
		LogRetention:      50,
		MaxUploadBytes:    1 << 30,
		LogLevel:          "info",
		UnitName:          "panther-agent.service",
		SystemdRunPath:    "systemd-run",
		ResultHooks: ResultHooks{
			CommandTimeout: Duration{30 * time.Second}, WebhookTimeout: Duration{10 * time.Second}, WebhookAttempts: 3,
		},
		NoLogsNoSupport: new(false),
		FleetCache:      FleetCache{Port: 7444, StartWait: Duration{2 * time.Minute}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load with defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestDefaultsKeepWhatIsSet(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "flakeHost follows hostName",
			json: `{"hostName": "web1", "trustedKeys": ["` + testKey + `"]}`,
			check: func(t *testing.T, c *Config) {
				if c.FlakeHost != "web1" {
					t.Errorf("FlakeHost = %q, want web1", c.FlakeHost)
				}
			},
		},
		{
			name: "explicit empty lists stay empty",
			json: `{"hostName": "web1", "tags": [], "allowedTags": [], "allowedUsers": ["alice@example.com"], "trustedKeys": ["` + testKey + `"]}`,
			check: func(t *testing.T, c *Config) {
				if c.Tags == nil || len(c.Tags) != 0 || len(c.AllowedTags) != 0 {
					t.Errorf("Tags = %#v, AllowedTags = %#v, want both empty", c.Tags, c.AllowedTags)
				}
			},
		},
		{
			name: "nulls mean defaults",
			json: `{"hostName": "web1", "port": null, "confirmTimeout": null, "tags": null, "trustedKeys": ["` + testKey + `"]}`,
			check: func(t *testing.T, c *Config) {
				if c.Port != DefaultPort || c.ConfirmTimeout.Duration != DefaultConfirmTimeout || len(c.Tags) != 1 {
					t.Errorf("got port %d, confirm %v, tags %v; want defaults", c.Port, c.ConfirmTimeout, c.Tags)
				}
			},
		},
		{
			name: "health check defaults per type",
			json: `{"hostName": "web1", "trustedKeys": ["` + testKey + `"], "healthChecks": [
				{"name": "web", "type": "http", "url": "http://127.0.0.1/"},
				{"name": "db", "type": "tcp", "address": "127.0.0.1:5432", "timeout": 1, "retries": 2}]}`,
			check: func(t *testing.T, c *Config) {
				web, db := c.HealthChecks[0], c.HealthChecks[1]
				if web.ExpectStatus != 200 || web.Timeout.Duration != 5*time.Second || web.Interval.Duration != 2*time.Second {
					t.Errorf("http check = %+v, want status 200, timeout 5s, interval 2s", web)
				}
				if db.ExpectStatus != 0 || db.Timeout.Duration != time.Second || db.Retries != 2 {
					t.Errorf("tcp check = %+v, want no status, timeout 1s, 2 retries", db)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.json))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("a missing file is not an invalid config: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		json      string
		wantField string
		wantMsg   string
	}{
		{"unknown key", `{"prot": 1}`, "prot", `unknown key "prot" (did you mean "port"?)`},
		{"unknown key far from any", `{"colour": "blue"}`, "colour", `unknown key "colour"`},
		{"key in the wrong case", `{"HostName": "x"}`, "HostName", `did you mean "hostName"?`},
		{"unknown key in a health check", `{"healthChecks": [{"name": "a", "typ": "tcp"}]}`, "healthChecks[0].typ", `did you mean "type"?`},
		{"repeated key", `{"port": 1, "port": 2}`, "port", "more than once"},
		{"string for a number", `{"port": "7443"}`, "port", `want a whole number, got the string "7443"`},
		{"fraction for a number", `{"logRetention": 1.5}`, "logRetention", "whole number"},
		{"number too big", `{"port": 99999999999999999999}`, "port", "fits in 64 bits"},
		{"string for a list", `{"tags": "tag:a"}`, "tags", "want a list of strings"},
		{"number in a list", `{"trustedKeys": [1]}`, "trustedKeys[0]", "want a string, got the number 1"},
		{"string for a bool", `{"logJSON": "yes"}`, "logJSON", "want true or false"},
		{"bad duration", `{"confirmTimeout": "soon"}`, "confirmTimeout", `duration "soon"`},
		{"bad nested duration", `{"healthChecks": [{}, {"timeout": "5 parsecs"}]}`, "healthChecks[1].timeout", "Go duration"},
		{"null health check", `{"healthChecks": [null]}`, "healthChecks[0]", "want an object, got null"},
		{"object for a string", `{"hostName": {}}`, "hostName", "want a string, got an object"},
		{"top level list", `[]`, "(top level)", "want an object, got a list"},
		{"top level null", `null`, "(top level)", "want an object, got null"},
		{"trailing data", `{} {}`, "", "unexpected data after the JSON object"},
		{"syntax error", "{\n  \"port\": 1,\n}", "", "not valid JSON at line 3"},
		{"empty", ``, "", "unexpected end of input"},
		{"truncated", `{"port": 1`, "", "unexpected end of input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.json))
			ce := problems(t, err)
			if len(ce.Problems) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ce.Problems), err)
			}
			p := ce.Problems[0]
			if p.Field != tt.wantField || !strings.Contains(p.Message, tt.wantMsg) {
				t.Errorf("got problem %q / %q, want field %q and a message containing %q", p.Field, p.Message, tt.wantField, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), "agent.json") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// validConfig returns a config that passes Validate.
func validConfig() *Config {
	c := &Config{HostName: "web1", TrustedKeys: []string{testKey}, HealthSettle: Duration{DefaultHealthSettle}}
	c.ApplyDefaults()
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(c *Config)
		wantFields []string
		wantMsg    string
	}{
		{"valid", func(c *Config) {}, nil, ""},
		{"no hostName", func(c *Config) { c.HostName = "" }, []string{"hostName"}, "required"},
		{"hostName with a space", func(c *Config) { c.HostName = "web 1" }, []string{"hostName"}, "not a hostname"},
		{"flakeHost with a quote", func(c *Config) { c.FlakeHost = `web"1` }, []string{"flakeHost"}, "attribute name"},
		{"flakeHost with a dot", func(c *Config) { c.FlakeHost = "web1.example.com" }, []string{"flakeHost"}, "attribute name"},
		// One rule with the deploy engine (nix.CheckHost): NixOS host names
		// may start with a digit, never with a dash.
		{"flakeHost starting with a digit", func(c *Config) { c.FlakeHost = "1web" }, nil, ""},
		{"flakeHost starting with a dash", func(c *Config) { c.FlakeHost = "-web" }, []string{"flakeHost"}, "not starting with '-'"},
		{"FQDN hostName with a plain flakeHost", func(c *Config) { c.HostName = "web1.example.com" }, nil, ""},
		{"relative stateDir", func(c *Config) { c.StateDir = "var/lib/x" }, []string{"stateDir"}, "absolute"},
		{"unclean profile", func(c *Config) { c.Profile = "/nix/var/../profiles" }, []string{"profile"}, "clean"},
		{"relative runtimeDir", func(c *Config) { c.RuntimeDir = "run/panther-agent" }, []string{"runtimeDir"}, "absolute"},
		{"relative currentSystem", func(c *Config) { c.CurrentSystem = "current-system" }, []string{"currentSystem"}, "absolute"},
		{"relative authKeyFile", func(c *Config) { c.AuthKeyFile = "key" }, []string{"authKeyFile"}, "absolute"},
		{"controlUrl without scheme", func(c *Config) { c.ControlURL = "headscale.example.com" }, []string{"controlUrl"}, "http(s) URL"},
		{"controlUrl https", func(c *Config) { c.ControlURL = "https://headscale.example.com" }, nil, ""},
		{"tag without prefix", func(c *Config) { c.Tags = []string{"panther-agent"} }, []string{"tags[0]"}, "tailnet tag"},
		{"allowed tag with a digit first", func(c *Config) { c.AllowedTags = []string{"tag:ok", "tag:1x"} }, []string{"allowedTags[1]"}, "tailnet tag"},
		{"nobody allowed", func(c *Config) { c.AllowedTags = []string{} }, []string{"allowedTags"}, "no caller"},
		{"users instead of tags", func(c *Config) { c.AllowedTags = []string{}; c.AllowedUsers = []string{"alice@example.com"} }, nil, ""},
		{"blank user", func(c *Config) { c.AllowedUsers = []string{" "} }, []string{"allowedUsers[0]"}, "login name"},
		{"no trusted key", func(c *Config) { c.TrustedKeys = nil }, []string{"trustedKeys"}, "pantherctl keygen"},
		{"trusted key without prefix", func(c *Config) { c.TrustedKeys = []string{strings.TrimPrefix(testKey, "panther-ed25519:")} }, []string{"trustedKeys[0]"}, "not a key line"},
		{"trusted key too short", func(c *Config) { c.TrustedKeys = []string{"panther-ed25519:AAAA"} }, []string{"trustedKeys[0]"}, "bytes, want 32"},
		{"trusted key bad base64", func(c *Config) { c.TrustedKeys = []string{"panther-ed25519:!!!"} }, []string{"trustedKeys[0]"}, "base64"},
		{"duplicate trusted key", func(c *Config) { c.TrustedKeys = []string{testKey, otherKey, testKey} }, []string{"trustedKeys[2]"}, "same key as trustedKeys[0]"},
		{"port zero", func(c *Config) { c.Port = 0 }, []string{"port"}, "between 1 and 65535"},
		{"port too big", func(c *Config) { c.Port = 65536 }, []string{"port"}, "between 1 and 65535"},
		{"negative confirmTimeout", func(c *Config) { c.ConfirmTimeout.Duration = -time.Second }, []string{"confirmTimeout"}, "positive"},
		{"zero maxConfirmTimeout", func(c *Config) { c.MaxConfirmTimeout.Duration = 0 }, []string{"maxConfirmTimeout"}, "positive"},
		{"negative switchTimeout", func(c *Config) { c.SwitchTimeout.Duration = -time.Minute }, []string{"switchTimeout"}, "positive"},
		{"negative healthSettle", func(c *Config) { c.HealthSettle.Duration = -1 }, []string{"healthSettle"}, "positive"},
		{"confirm beyond max", func(c *Config) { c.ConfirmTimeout.Duration = time.Hour }, []string{"confirmTimeout"}, "longer than maxConfirmTimeout"},
		{"unit without suffix", func(c *Config) { c.CriticalUnits = []string{"nginx"} }, []string{"criticalUnits[0]"}, "unit name"},
		{"unit with a slash", func(c *Config) { c.CriticalUnits = []string{"a/b.service"} }, []string{"criticalUnits[0]"}, "unit name"},
		{"negative logRetention", func(c *Config) { c.LogRetention = -1 }, []string{"logRetention"}, "at least 1"},
		{"negative maxUploadBytes", func(c *Config) { c.MaxUploadBytes = -1 }, []string{"maxUploadBytes"}, "positive"},
		{"unknown logLevel", func(c *Config) { c.LogLevel = "verbose" }, []string{"logLevel"}, "trace, debug"},
		{"logLevel in capitals", func(c *Config) { c.LogLevel = "DEBUG" }, nil, ""},
		{"unitName not a service", func(c *Config) { c.UnitName = "panther.socket" }, []string{"unitName"}, "service unit"},
		{"relative systemdRunPath with a slash", func(c *Config) { c.SystemdRunPath = "bin/systemd-run" }, []string{"systemdRunPath"}, "absolute"},
		{"absolute systemdRunPath", func(c *Config) { c.SystemdRunPath = "/run/current-system/sw/bin/systemd-run" }, nil, ""},
		{"several problems at once", func(c *Config) { c.Port = -1; c.LogLevel = "loud" }, []string{"port", "logLevel"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			checkValidate(t, c, tt.wantFields, tt.wantMsg)
		})
	}
}

// checkValidate validates c and wants exactly wantFields to be reported
// (none: valid), the first with a message containing wantMsg.
func checkValidate(t *testing.T, c *Config, wantFields []string, wantMsg string) {
	t.Helper()
	err := c.Validate()
	if wantFields == nil {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	ce := problems(t, err)
	if got := ce.Fields(); !reflect.DeepEqual(got, wantFields) {
		t.Errorf("problem fields = %q, want %q (%v)", got, wantFields, err)
	}
	if !strings.Contains(ce.Problems[0].Message, wantMsg) {
		t.Errorf("message %q does not contain %q", ce.Problems[0].Message, wantMsg)
	}
}

func TestValidateHealthChecks(t *testing.T) {
	sec := Duration{time.Second}
	tests := []struct {
		name       string
		check      HealthCheck
		wantFields []string
		wantMsg    string
	}{
		{"http complete", HealthCheck{Name: "a", Type: "http", URL: "https://127.0.0.1/healthz"}, nil, ""},
		{"tcp complete", HealthCheck{Name: "a", Type: "tcp", Address: "[::1]:5432"}, nil, ""},
		{"command complete", HealthCheck{Name: "a", Type: "command", Command: []string{"true"}}, nil, ""},
		{"no name", HealthCheck{Type: "tcp", Address: "localhost:1"}, []string{"healthChecks[0].name"}, "required"},
		{"no type", HealthCheck{Name: "a"}, []string{"healthChecks[0].type"}, "http, tcp or command"},
		{"unknown type", HealthCheck{Name: "a", Type: "icmp"}, []string{"healthChecks[0].type"}, `"icmp" is not one of`},
		{"http without url", HealthCheck{Name: "a", Type: "http"}, []string{"healthChecks[0].url"}, "required for http"},
		{"http with a bad url", HealthCheck{Name: "a", Type: "http", URL: "ftp://x/"}, []string{"healthChecks[0].url"}, "http(s) URL"},
		{"http with a bad status", HealthCheck{Name: "a", Type: "http", URL: "http://x/", ExpectStatus: 42}, []string{"healthChecks[0].expectStatus"}, "between 100 and 599"},
		{"http with an address", HealthCheck{Name: "a", Type: "http", URL: "http://x/", Address: "x:1"}, []string{"healthChecks[0].address"}, "only used by tcp checks"},
		{"tcp without address", HealthCheck{Name: "a", Type: "tcp"}, []string{"healthChecks[0].address"}, "required for tcp"},
		{"tcp without port", HealthCheck{Name: "a", Type: "tcp", Address: "localhost"}, []string{"healthChecks[0].address"}, "host:port"},
		{"tcp with port zero", HealthCheck{Name: "a", Type: "tcp", Address: "localhost:0"}, []string{"healthChecks[0].address"}, "host:port"},
		{"tcp with a status", HealthCheck{Name: "a", Type: "tcp", Address: "x:1", ExpectStatus: 200}, []string{"healthChecks[0].expectStatus"}, "only used by http checks"},
		{"command empty", HealthCheck{Name: "a", Type: "command", Command: []string{}}, []string{"healthChecks[0].command"}, "required for command"},
		{"command with a url", HealthCheck{Name: "a", Type: "command", Command: []string{"true"}, URL: "http://x/"}, []string{"healthChecks[0].url"}, "only used by http"},
		{"negative retries", HealthCheck{Name: "a", Type: "tcp", Address: "x:1", Retries: -1}, []string{"healthChecks[0].retries"}, "negative"},
		{"negative timeout", HealthCheck{Name: "a", Type: "tcp", Address: "x:1", Timeout: Duration{-time.Second}}, []string{"healthChecks[0].timeout"}, "positive"},
		{"negative interval", HealthCheck{Name: "a", Type: "tcp", Address: "x:1", Interval: Duration{-time.Second}, Timeout: sec}, []string{"healthChecks[0].interval"}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.HealthChecks = []HealthCheck{tt.check}
			c.ApplyDefaults()
			checkValidate(t, c, tt.wantFields, tt.wantMsg)
		})
	}
}

func TestValidateDuplicateHealthCheckNames(t *testing.T) {
	c := validConfig()
	c.HealthChecks = []HealthCheck{
		{Name: "a", Type: "tcp", Address: "x:1"},
		{Name: "a", Type: "tcp", Address: "x:2"},
	}
	c.ApplyDefaults()
	ce := problems(t, c.Validate())
	if got := ce.Fields(); !reflect.DeepEqual(got, []string{"healthChecks[1].name"}) {
		t.Errorf("fields = %q, want healthChecks[1].name (%v)", got, ce)
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    time.Duration
		wantErr string
	}{
		{"go duration", `"1m30s"`, 90 * time.Second, ""},
		{"whole seconds", `60`, time.Minute, ""},
		{"fractional seconds", `1.5`, 1500 * time.Millisecond, ""},
		{"seconds as a string", `"90"`, 90 * time.Second, ""},
		{"null keeps the value", `null`, 7 * time.Second, ""},
		{"no unit", `"1h2"`, 0, "Go duration"},
		{"out of range", `1e300`, 0, "out of range"},
		{"bool", `true`, 0, "Go duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Duration{7 * time.Second}
			err := json.Unmarshal([]byte(tt.json), &d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, want an error containing %q", tt.json, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.json, err)
			}
			if d.Duration != tt.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tt.json, d.Duration, tt.want)
			}
		})
	}
	b, err := json.Marshal(Duration{90 * time.Second})
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal(90s) = %s, %v; want \"1m30s\"", b, err)
	}
}

func TestProblemsNameFileAndField(t *testing.T) {
	path := writeConfig(t, `{"hostName": "web1", "port": 70000, "trustedKeys": []}`)
	_, err := Load(path)
	ce := problems(t, err)
	msg := err.Error()
	for _, want := range []string{path, "port: must be between 1 and 65535, got 70000", "trustedKeys: at least one controller key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if len(ce.Problems) != 2 {
		t.Errorf("got %d problems, want 2: %v", len(ce.Problems), err)
	}
}

// An explicit "healthSettle": "0s" means no settle time, not the default.
func TestZeroHealthSettleIsKept(t *testing.T) {
	for _, tc := range []struct {
		name string
		json string
		want time.Duration
	}{
		{"absent", `{"hostName":"a","trustedKeys":["` + testKey + `"]}`, DefaultHealthSettle},
		{"explicit zero", `{"hostName":"a","trustedKeys":["` + testKey + `"],"healthSettle":"0s"}`, 0},
		{"given", `{"hostName":"a","trustedKeys":["` + testKey + `"],"healthSettle":"2s"}`, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.HealthSettle.Duration != tc.want {
				t.Errorf("healthSettle = %v, want %v", c.HealthSettle.Duration, tc.want)
			}
		})
	}
}

// TestNoLogsNoSupportDefaultsToControlURL: with a self-hosted controlUrl
// the agent still dialled Tailscale's log servers unless noLogsNoSupport
// was set. It now defaults to true when controlUrl is set; an explicit
// value wins either way.
func TestNoLogsNoSupportDefaultsToControlURL(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{}`, false},
		{`{"controlUrl": "https://headscale.example.com"}`, true},
		{`{"controlUrl": "https://headscale.example.com", "noLogsNoSupport": false}`, false},
		{`{"noLogsNoSupport": true}`, true},
	} {
		c, err := Parse([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if c.NoLogs() != tc.want {
			t.Errorf("%s: NoLogs() before defaults = %v, want %v", tc.doc, c.NoLogs(), tc.want)
		}
		c.ApplyDefaults()
		if c.NoLogsNoSupport == nil || *c.NoLogsNoSupport != tc.want || c.NoLogs() != tc.want {
			t.Errorf("%s: noLogsNoSupport after defaults = %v, want %v", tc.doc, c.NoLogsNoSupport, tc.want)
		}
	}
}
