package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/fleettest"
)

const metricsPort = 9464

// TestMetricsAndResultHooks: one deploy on a real agent, then the metrics
// are scraped over the tailnet (and only there, only by allowed peers), and
// both result hooks have fired with the result.
func TestMetricsAndResultHooks(t *testing.T) {
	var mu sync.Mutex
	var posts []map[string]any
	got := make(chan struct{}, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		posts = append(posts, p)
		mu.Unlock()
		got <- struct{}{}
	}))
	t.Cleanup(hook.Close)

	// The hosts share the test's network namespace, so that the agent can
	// reach the webhook on the loopback (the webhook leaves the tailnet).
	f := fleettest.New(t, fleettest.Options{
		Hosts:          map[string]string{"alpha": "good"},
		NoSandboxNetNS: true,
		AgentConfig: map[string]any{
			"metrics": map[string]any{"port": metricsPort},
			"resultHooks": map[string]any{
				"command":    []string{"/bin/sh", "-c", `cat > /var/lib/panther-agent/hook-"$PANTHER_DEPLOYMENT".json; echo "hook: $PANTHER_RESULT"`},
				"webhookUrl": hook.URL + "/panther",
			},
		},
	})
	alpha := f.Hosts["alpha"]
	r := f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	ids := alpha.Deployments(t)
	if len(ids) != 1 {
		t.Fatalf("deployments on alpha: %v\n%s", ids, r)
	}
	id := ids[0]
	// The plain output says the switch is done once it has ended.
	exited := strings.Index(r.Stdout, "switch-to-configuration test exited") // test, then boot
	done := strings.Index(r.Stdout, "switch done in")
	if exited < 0 || done < exited {
		t.Errorf("'switch done' is not after the switch's exit line:\n%s", r)
	}

	// The webhook got the final result.
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("the webhook was not called\n%s", alpha.AgentJournal())
	}
	mu.Lock()
	p := posts[0]
	mu.Unlock()
	if p["deployment"] != id || p["result"] != "confirmed" || p["host"] != "alpha" || p["success"] != true {
		t.Errorf("webhook payload %v, want deployment %s confirmed", p, id)
	}

	// The command got the same JSON on stdin; its output is in the agent log.
	var stdin map[string]any
	waitFor(t, 30*time.Second, "the hook command's file", func() bool {
		out, err := os.ReadFile(alpha.SB.Path("/var/lib/panther-agent/hook-" + id + ".json"))
		return err == nil && json.Unmarshal(out, &stdin) == nil
	})
	if stdin["deployment"] != id || stdin["result"] != "confirmed" {
		t.Errorf("hook command stdin %v", stdin)
	}
	if j := alpha.AgentJournal(); !strings.Contains(j, "hook: confirmed") {
		t.Errorf("the hook command's output is not in the agent log:\n%s", j)
	}

	// Metrics, over the tailnet, by a controller-tagged node.
	ctl := f.ControllerNode(t, "scraper")
	body, code := scrape(t, ctl, "alpha")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, body)
	}
	for _, want := range []string{
		`panther_deployments_total{action="switch",result="confirmed"} 1`,
		`panther_last_deployment_success 1`,
		`panther_last_deployment_info{deployment="` + id + `",action="switch",result="confirmed"} 1`,
		`panther_confirm_latency_seconds_count 1`,
		`panther_rollbacks_total{trigger="automatic"} 0`,
		`panther_reboot_required 0`,
		`panther_agent_info{version=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// A node without the controller tag is refused, like on the API.
	other := f.Tailnet.Node(t, "stranger", "tag:other")
	if _, code := scrape(t, other, "alpha"); code != http.StatusForbidden {
		t.Errorf("untagged scraper: status %d, want 403", code)
	}
	// A refused request: the refusal alone (no "==> upload" first), no
	// deployment, so no hook and no count.
	t.Run("Refused", func(t *testing.T) {
		stranger := filepath.Join(t.TempDir(), "stranger.key")
		f.MustCtl(0, "keygen", "--key", stranger)
		r := f.MustCtl(6, "deploy", "alpha", "--yes", "--flake", f.Flake, "--key", stranger)
		if strings.Contains(r.Stdout+r.Stderr, "==> upload") || !strings.Contains(r.Stderr, "refused") {
			t.Errorf("refused deploy output:\n%s", r)
		}
		for _, raw := range []string{"desc =", "rpc error", "transport:"} {
			if strings.Contains(r.Stdout+r.Stderr, raw) {
				t.Errorf("raw gRPC text %q in:\n%s", raw, r)
			}
		}
		time.Sleep(time.Second)
		mu.Lock()
		n := len(posts)
		mu.Unlock()
		if n != 1 {
			t.Errorf("%d webhook posts after a refused request, want still 1", n)
		}
		if body, _ := scrape(t, ctl, "alpha"); !strings.Contains(body, `panther_deployments_total{action="switch",result="confirmed"} 1`) {
			t.Errorf("metrics changed:\n%s", body)
		}
	})

	// Nothing listens on the host's own interfaces.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)), time.Second); err == nil {
		c.Close()
		t.Errorf("the metrics port is open on the host's loopback")
	}
}

func scrape(t *testing.T, node *tailnet.Node, host string) (string, int) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: node.Dial}}
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		resp, err := client.Get("http://" + net.JoinHostPort(host, strconv.Itoa(metricsPort)) + "/metrics")
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b), resp.StatusCode
	}
	t.Fatalf("scrape %s over the tailnet: %v", host, lastErr)
	return "", 0
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
