package hooks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
)

// logSink collects the runner's log output.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRunner(t *testing.T, cfg Config) (*Runner, *logSink) {
	t.Helper()
	sink := &logSink{}
	cfg.Version = "v9"
	r, err := New(cfg, hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Debug}))
	if err != nil {
		t.Fatal(err)
	}
	return r, sink
}

func final(id string) deploy.Final {
	return deploy.Final{
		ID: id, Host: "yoga", Action: deploy.ActionSwitch, RequestedBy: "alice",
		Result:   deploy.Result{Outcome: journal.StateRolledBack, FailedPhase: deploy.PhaseHealth, Message: "health check failed:\nnginx", Generation: 7},
		Finished: time.Unix(1_800_000_000, 0),
	}
}

// webhook is a local server that records bodies and answers from a script.
type webhook struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []Payload
	codes  []int // answer i for request i; 200 after the script
	got    chan struct{}
}

func newWebhook(t *testing.T, codes ...int) *webhook {
	w := &webhook{codes: codes, got: make(chan struct{}, 100)}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var p Payload
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		n := len(w.bodies)
		w.bodies = append(w.bodies, p)
		code := 200
		if n < len(w.codes) {
			code = w.codes[n]
		}
		w.mu.Unlock()
		rw.WriteHeader(code)
		w.got <- struct{}{}
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhook) requests() []Payload {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Payload(nil), w.bodies...)
}

func TestWebhookDeliversWithBoundedRetries(t *testing.T) {
	tests := []struct {
		name      string
		codes     []int
		attempts  int
		wantCalls int
		wantLog   string
	}{
		{"first try", nil, 3, 1, "result webhook delivered"},
		{"retried after 500 and 429", []int{500, 429}, 3, 3, "result webhook delivered"},
		{"gives up after the attempts", []int{503, 503, 503, 503}, 2, 2, "result webhook failed"},
		{"400 is not retried", []int{400}, 3, 1, "not retried"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wh := newWebhook(t, tc.codes...)
			r, logs := newRunner(t, Config{WebhookURL: wh.URL + "/hook/SECRET", WebhookAttempts: tc.attempts, Backoff: time.Millisecond})
			r.Observe(final("d1"))
			r.Close(10 * time.Second)
			got := wh.requests()
			if len(got) != tc.wantCalls {
				t.Fatalf("%d requests, want %d\n%s", len(got), tc.wantCalls, logs)
			}
			p := got[0]
			if p.Deployment != "d1" || p.Result != "rolled-back" || p.Success || p.FailedPhase != "health" ||
				p.Host != "yoga" || p.Generation != 7 || p.AgentVersion != "v9" || p.Finished != "2027-01-15T08:00:00Z" {
				t.Errorf("payload %+v", p)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs)
			}
			if strings.Contains(logs.String(), "SECRET") {
				t.Errorf("log shows the webhook URL's path:\n%s", logs)
			}
		})
	}
}

func TestWebhookUnreachableIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	r, logs := newRunner(t, Config{WebhookURL: url, WebhookAttempts: 3, Backoff: time.Millisecond, WebhookTimeout: time.Second})
	start := time.Now()
	r.Observe(final("d1"))
	r.Close(10 * time.Second)
	if time.Since(start) > 5*time.Second {
		t.Errorf("three attempts took %v", time.Since(start))
	}
	if got := strings.Count(logs.String(), "attempt failed; retrying"); got != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", got, logs)
	}
}

func TestCommandGetsResultOnStdinAndEnv(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
cat > "$1/stdin.json"
env | grep '^PANTHER_' | sort > "$1/env"
echo "hook saw $PANTHER_DEPLOYMENT"
`), 0o755)
	r, logs := newRunner(t, Config{Command: []string{script, dir}})
	r.Observe(final("d1"))
	r.Close(10 * time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "stdin.json"))
	if err != nil {
		t.Fatalf("the command did not run: %v\n%s", err, logs)
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil || p.Deployment != "d1" || p.Result != "rolled-back" {
		t.Errorf("stdin %s (%v)", b, err)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	for _, want := range []string{"PANTHER_DEPLOYMENT=d1", "PANTHER_RESULT=rolled-back", "PANTHER_SUCCESS=false",
		"PANTHER_MESSAGE=health check failed: nginx", "PANTHER_GENERATION=7", "PANTHER_HOST=yoga"} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if !strings.Contains(logs.String(), "hook saw d1") {
		t.Errorf("command output not in the log:\n%s", logs)
	}
}

func TestCommandTimeoutKillsItAndNeverBlocksObserve(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "slow.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho started\nsleep 30 &\nwait\n"), 0o755)
	r, logs := newRunner(t, Config{Command: []string{script}, CommandTimeout: 300 * time.Millisecond, Queue: 2})
	start := time.Now()
	for i := 0; i < 5; i++ { // more than the queue holds, while the first hangs
		r.Observe(final("d" + string(rune('0'+i))))
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Observe blocked for %v", el)
	}
	r.Close(10 * time.Second)
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("timed-out hooks took %v", el)
	}
	l := logs.String()
	if !strings.Contains(l, "took longer than its timeout") || !strings.Contains(l, "queue full") {
		t.Errorf("log:\n%s", l)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{WebhookURL: "example.com/hook"},
		{WebhookURL: "ftp://example.com/hook"},
		{WebhookURL: "https:///hook"},
		{WebhookURL: "https://example.com/hook#x"},
		{WebhookURL: "https://example.com/a b"},
		{WebhookURL: "https://example.com/", WebhookAttempts: 11},
		{Command: []string{""}},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	r, err := New(Config{}, nil)
	if err != nil || r.Enabled() {
		t.Fatalf("empty config: %v, enabled %v", err, r.Enabled())
	}
	r.Observe(final("d1"))
	r.Close(time.Second)
}
