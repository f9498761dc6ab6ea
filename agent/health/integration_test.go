package health_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/health"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// TestCheckOnRealSystemd judges a real systemd booted in a sandbox, over its
// D-Bus, with an HTTP service inside reached over the sandbox's veth.
func TestCheckOnRealSystemd(t *testing.T) {
	s := sandboxtest.Boot(t, sandboxtest.Options{
		Name:  "health",
		NetNS: true,
		Units: map[string]string{
			"broken-at-boot.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n",
			"broken-later.service":   "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo cannot start; exit 1'\n",
			"idle.service":           "[Service]\nExecStart=/bin/sleep infinity\n",
			"web.service":            "[Service]\nWorkingDirectory=/etc\nExecStart=/usr/bin/python3 -m http.server --bind 0.0.0.0 8080\n",
		},
		Enable: []string{"broken-at-boot.service", "web.service"},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	webURL := "http://" + net.JoinHostPort(s.IP().String(), "8080") + "/hostname"
	waitHTTP(t, ctx, webURL)

	c, err := health.New(health.Config{
		Connect:      health.BusConnector(s.BusAddress()),
		Logger:       hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug}),
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if baseline.SystemState != "degraded" || !slices.Equal(baseline.Failed, []string{"broken-at-boot.service"}) {
		t.Fatalf("baseline = %+v, want degraded with broken-at-boot.service failed", baseline)
	}

	spec := health.Spec{
		CriticalUnits: []string{"web.service"},
		Checks: []health.CheckSpec{
			{Name: "web", Type: health.TypeHTTP, URL: webURL, Timeout: 2 * time.Second, Retries: -1},
			{Name: "web-port", Type: health.TypeTCP, Address: net.JoinHostPort(s.IP().String(), "8080"), Timeout: 2 * time.Second, Retries: -1},
		},
	}
	check := func(t *testing.T, spec health.Spec) health.Report {
		t.Helper()
		var reported []health.Result
		rep, err := c.Check(ctx, baseline, spec, func(r health.Result) { reported = append(reported, r) })
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		// Checks report as they end; the report keeps the spec's order.
		byName := func(a, b health.Result) int { return strings.Compare(a.Kind+a.Name, b.Kind+b.Name) }
		slices.SortFunc(reported, byName)
		if held := slices.SortedFunc(slices.Values(rep.Results), byName); !slices.Equal(reported, held) {
			t.Errorf("reported %v, report holds %v", reported, held)
		}
		return rep
	}

	t.Run("already failed unit does not fail", func(t *testing.T) {
		rep := check(t, spec)
		if !rep.OK {
			t.Fatalf("not OK: %s", rep.Reason())
		}
		if !slices.Equal(rep.PreviouslyFailed, []string{"broken-at-boot.service"}) || len(rep.NewlyFailed) != 0 {
			t.Errorf("previously failed %v, newly failed %v", rep.PreviouslyFailed, rep.NewlyFailed)
		}
	})

	t.Run("critical unit inactive fails", func(t *testing.T) {
		withIdle := spec
		withIdle.CriticalUnits = []string{"web.service", "idle.service"}
		rep := check(t, withIdle)
		if rep.OK || !strings.Contains(rep.Reason(), "critical-unit idle.service: inactive (dead)") {
			t.Errorf("OK %v, reason %q: want idle.service inactive", rep.OK, rep.Reason())
		}
	})

	t.Run("unit failed after the baseline fails", func(t *testing.T) {
		if _, err := s.Exec(ctx, "systemctl", "start", "broken-later.service"); err == nil {
			t.Fatal("broken-later.service started")
		}
		rep := check(t, spec)
		if rep.OK || !slices.Equal(rep.NewlyFailed, []string{"broken-later.service"}) {
			t.Errorf("OK %v, newly failed %v, reason %q", rep.OK, rep.NewlyFailed, rep.Reason())
		}
		state, failed, err := c.Status(ctx)
		if err != nil || state != "degraded" || !slices.Equal(failed, []string{"broken-at-boot.service", "broken-later.service"}) {
			t.Errorf("Status = %q, %v, %v", state, failed, err)
		}
		s.Run(t, "systemctl", "reset-failed", "broken-later.service")
	})

	t.Run("http check fails once the service stops", func(t *testing.T) {
		s.Run(t, "systemctl", "stop", "web.service")
		rep := check(t, spec)
		if rep.OK {
			t.Fatal("OK with web.service stopped")
		}
		failing := map[string]string{}
		for _, r := range rep.Results {
			if !r.OK {
				failing[r.Kind+"/"+r.Name] = r.Detail
			}
		}
		for _, want := range []string{"critical-unit/web.service", "http/web", "tcp/web-port"} {
			if _, ok := failing[want]; !ok {
				t.Errorf("%s did not fail; failing: %v", want, failing)
			}
		}
		if d := failing["http/web"]; !strings.Contains(d, "connection refused") {
			t.Errorf("http detail %q, want connection refused", d)
		}
	})
}

// waitHTTP polls url until it answers 200 or ctx ends.
func waitHTTP(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
