package metrics

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
)

// A sample line of the text format: name, optional labels, a value.
var (
	sampleRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$`)
	metaRE   = regexp.MustCompile(`^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$`)
)

// checkFormat fails the test on a line the exposition format does not allow
// and returns the samples by name and labels.
func checkFormat(t *testing.T, text string) map[string]string {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("exposition does not end with a newline")
	}
	samples := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			if !metaRE.MatchString(line) {
				t.Errorf("bad comment line %q", line)
			}
		case !sampleRE.MatchString(line):
			t.Errorf("bad sample line %q", line)
		default:
			i := strings.LastIndexByte(line, ' ')
			samples[line[:i]] = line[i+1:]
		}
	}
	return samples
}

func scrape(t *testing.T, m *Metrics) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("scrape: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	return checkFormat(t, rec.Body.String())
}

func want(t *testing.T, samples map[string]string, name, value string) {
	t.Helper()
	if got, ok := samples[name]; !ok || got != value {
		t.Errorf("%s = %q (present %v), want %q", name, got, ok, value)
	}
}

func TestMetricsFromResults(t *testing.T) {
	m := New(Options{Version: `v1.2.3"x`, Host: "yoga", BootedSystem: "-"})
	s := scrape(t, m)
	want(t, s, `panther_agent_info{version="v1.2.3\"x",host="yoga"}`, "1")
	want(t, s, `panther_deployments_total{action="switch",result="confirmed"}`, "0")
	want(t, s, `panther_deployments_total{action="switch",result="rolled-back"}`, "0")
	want(t, s, `panther_last_deployment_timestamp_seconds`, "0")
	want(t, s, `panther_reboot_required`, "0")
	want(t, s, `panther_confirm_latency_seconds_count`, "0")

	at := time.Unix(1_800_000_000, 500_000_000)
	m.Observe(deploy.Final{ID: "d1", Action: deploy.ActionSwitch, Finished: at, ConfirmLatency: 1500 * time.Millisecond,
		Result: deploy.Result{Outcome: journal.StateConfirmed}, RebootRequired: true})
	m.Observe(deploy.Final{ID: "d2", Action: deploy.ActionBuild, Finished: at, Result: deploy.Result{Outcome: journal.StateBuilt}})
	s = scrape(t, m)
	want(t, s, `panther_reboot_required`, "1") // a build does not clear it
	m.Observe(deploy.Final{ID: "d3", Action: deploy.ActionSwitch, Finished: at.Add(time.Minute),
		Result: deploy.Result{Outcome: journal.StateRolledBack}})
	m.Observe(deploy.Final{ID: "d4", Action: deploy.ActionRollback, Finished: at.Add(2 * time.Minute),
		Result: deploy.Result{Outcome: journal.StateConfirmed}})
	s = scrape(t, m)
	want(t, s, `panther_deployments_total{action="switch",result="confirmed"}`, "1")
	want(t, s, `panther_deployments_total{action="switch",result="rolled-back"}`, "1")
	want(t, s, `panther_deployments_total{action="build",result="built"}`, "1")
	want(t, s, `panther_deployments_total{action="rollback",result="confirmed"}`, "1")
	want(t, s, `panther_rollbacks_total{trigger="automatic"}`, "1")
	want(t, s, `panther_rollbacks_total{trigger="requested"}`, "1")
	want(t, s, `panther_last_deployment_timestamp_seconds`, "1.8000001205e+09")
	want(t, s, `panther_last_deployment_success`, "1")
	want(t, s, `panther_last_deployment_info{deployment="d4",action="rollback",result="confirmed"}`, "1")
	want(t, s, `panther_confirm_latency_seconds_bucket{le="1"}`, "0")
	want(t, s, `panther_confirm_latency_seconds_bucket{le="2.5"}`, "1")
	want(t, s, `panther_confirm_latency_seconds_bucket{le="+Inf"}`, "1")
	want(t, s, `panther_confirm_latency_seconds_sum`, "1.5")
	want(t, s, `panther_confirm_latency_seconds_count`, "1")
	want(t, s, `panther_reboot_required`, "0") // the rollback's system needs none
}

func TestRebootRequiredFromBootedSystem(t *testing.T) {
	dir := t.TempDir()
	mk := func(sys, kernel string) string {
		p := filepath.Join(dir, sys)
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(dir, kernel), nil, 0o644)
		os.Symlink(filepath.Join(dir, kernel), filepath.Join(p, "kernel"))
		return p
	}
	booted := mk("booted", "kernel-6.1")
	same := mk("same", "kernel-6.1")
	newer := mk("newer", "kernel-6.6")
	s := scrape(t, New(Options{BootedSystem: booted, CurrentSystem: same}))
	want(t, s, "panther_reboot_required", "0")
	s = scrape(t, New(Options{BootedSystem: booted, CurrentSystem: newer}))
	want(t, s, "panther_reboot_required", "1")
}

func TestHandlerRefusesPost(t *testing.T) {
	rec := httptest.NewRecorder()
	New(Options{BootedSystem: "-"}).Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}
