package health_test

import (
	"slices"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/agent/health"
)

func TestSpecFromConfig(t *testing.T) {
	c := &config.Config{
		HealthSettle:  config.Duration{Duration: 3 * time.Second},
		CriticalUnits: []string{"sshd.service", "nginx.service"},
		HealthChecks: []config.HealthCheck{
			{Name: "web", Type: "http", URL: "http://localhost/", ExpectStatus: 204,
				Timeout: config.Duration{Duration: 2 * time.Second}, Interval: config.Duration{Duration: 500 * time.Millisecond}},
			{Name: "db", Type: "tcp", Address: "localhost:5432", Retries: 4},
			{Name: "cmd", Type: "command", Command: []string{"true"}},
		},
	}
	spec := health.SpecFromConfig(c, []string{"nginx.service", "extra.service"})
	if spec.Settle != 3*time.Second {
		t.Errorf("Settle = %v", spec.Settle)
	}
	if want := []string{"sshd.service", "nginx.service", "extra.service"}; !slices.Equal(spec.CriticalUnits, want) {
		t.Errorf("CriticalUnits = %v, want %v", spec.CriticalUnits, want)
	}
	for _, tc := range []struct {
		name        string
		got         health.CheckSpec
		wantRetries int
	}{
		// The config's 0 is a single attempt; health's 0 would be the default.
		{name: "web", got: spec.Checks[0], wantRetries: -1},
		{name: "db", got: spec.Checks[1], wantRetries: 4},
		{name: "cmd", got: spec.Checks[2], wantRetries: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Name != tc.name || tc.got.Retries != tc.wantRetries {
				t.Errorf("check %+v: want name %s, retries %d", tc.got, tc.name, tc.wantRetries)
			}
		})
	}
	web := spec.Checks[0]
	if web.URL != "http://localhost/" || web.ExpectStatus != 204 || web.Timeout != 2*time.Second || web.Interval != 500*time.Millisecond {
		t.Errorf("web check = %+v", web)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The caller's slices are not shared.
	spec.Checks[2].Command[0] = "false"
	if c.HealthChecks[2].Command[0] != "true" {
		t.Error("SpecFromConfig shares the command slice with the config")
	}
}
