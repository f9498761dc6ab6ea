// Package hooks runs the agent's result hooks: on each final deployment
// result it runs a configured command (the result as JSON on stdin and as
// PANTHER_* environment variables, bounded in time, its output in the
// agent's log) and/or POSTs the same JSON to a webhook (bounded time per
// attempt, a bounded number of attempts). Results are queued: the deploy
// engine never waits for a hook.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/deploy"
)

// Defaults of [Config].
const (
	DefaultCommandTimeout  = 30 * time.Second
	DefaultWebhookTimeout  = 10 * time.Second
	DefaultWebhookAttempts = 3
	DefaultQueue           = 32
	DefaultBackoff         = time.Second
	// MaxWebhookAttempts caps WebhookAttempts.
	MaxWebhookAttempts = 10
	// maxOutput bounds the command output copied into the log.
	maxOutput = 64 << 10
)

// Config configures a [Runner]. Zero values take the defaults given.
type Config struct {
	// Command is the program and arguments run on each result; empty: none.
	Command []string
	// CommandTimeout bounds one run of Command; it is killed after that.
	// Default 30s.
	CommandTimeout time.Duration
	// WebhookURL receives a POST of the result as JSON; empty: none.
	WebhookURL string
	// WebhookTimeout bounds one attempt of the POST. Default 10s.
	WebhookTimeout time.Duration
	// WebhookAttempts is how many times the POST is tried when the server
	// cannot be reached or answers 5xx or 429. Default 3, at most 10.
	WebhookAttempts int
	// Backoff is the pause before the second attempt; it doubles after
	// each. Default 1s.
	Backoff time.Duration
	// Queue is how many results wait for their hooks; when it is full the
	// oldest waiting result is dropped (and logged). Default 32.
	Queue int
	// Version is the agent's version, sent in the payload and User-Agent.
	Version string
	// Client sends the webhook. Default: a client without proxy settings.
	Client *http.Client
}

// ErrInvalidConfig is wrapped by [New]'s errors.
var ErrInvalidConfig = errors.New("invalid result hook config")

// ValidateWebhookURL accepts an absolute http or https URL with a host and
// no fragment.
func ValidateWebhookURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http(s) URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%q has a fragment (#...), which is never sent", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%q contains spaces or control characters", s)
	}
	return nil
}

// Payload is the JSON a hook receives. Its field names are a stable
// interface (documented in README.md).
type Payload struct {
	Deployment       string   `json:"deployment"`
	Host             string   `json:"host"`
	Action           string   `json:"action"`
	Result           string   `json:"result"`
	Success          bool     `json:"success"`
	FailedPhase      string   `json:"failedPhase,omitempty"`
	Message          string   `json:"message,omitempty"`
	StorePath        string   `json:"storePath,omitempty"`
	Generation       int64    `json:"generation,omitempty"`
	SwitchExitCode   int      `json:"switchExitCode,omitempty"`
	RecoveryCommands []string `json:"recoveryCommands,omitempty"`
	RequestedBy      string   `json:"requestedBy,omitempty"`
	KeyID            string   `json:"keyId,omitempty"`
	Started          string   `json:"started,omitempty"`
	Finished         string   `json:"finished"`
	ConfirmLatencyS  float64  `json:"confirmLatencySeconds,omitempty"`
	RebootRequired   bool     `json:"rebootRequired"`
	AgentVersion     string   `json:"agentVersion,omitempty"`
}

// NewPayload converts a final result.
func NewPayload(f deploy.Final, version string) Payload {
	p := Payload{
		Deployment: f.ID, Host: f.Host, Action: string(f.Action), Result: string(f.Result.Outcome),
		FailedPhase: string(f.Result.FailedPhase), Message: f.Result.Message, StorePath: f.Result.StorePath,
		Generation: f.Result.Generation, SwitchExitCode: f.Result.SwitchExitCode,
		RecoveryCommands: f.Result.RecoveryCommands, RequestedBy: f.RequestedBy, KeyID: f.KeyID,
		Finished: f.Finished.UTC().Format(time.RFC3339Nano), ConfirmLatencyS: f.ConfirmLatency.Seconds(),
		RebootRequired: f.RebootRequired, AgentVersion: version,
	}
	switch f.Result.Outcome {
	case "confirmed", "built", "dry-activated", "boot-scheduled":
		p.Success = true
	}
	if !f.Started.IsZero() {
		p.Started = f.Started.UTC().Format(time.RFC3339Nano)
	}
	return p
}

// env is the payload as PANTHER_* environment variables.
func (p Payload) env() []string {
	return []string{
		"PANTHER_DEPLOYMENT=" + p.Deployment,
		"PANTHER_HOST=" + p.Host,
		"PANTHER_ACTION=" + p.Action,
		"PANTHER_RESULT=" + p.Result,
		"PANTHER_SUCCESS=" + strconv.FormatBool(p.Success),
		"PANTHER_FAILED_PHASE=" + p.FailedPhase,
		"PANTHER_MESSAGE=" + oneLine(p.Message),
		"PANTHER_STORE_PATH=" + p.StorePath,
		"PANTHER_GENERATION=" + strconv.FormatInt(p.Generation, 10),
		"PANTHER_REBOOT_REQUIRED=" + strconv.FormatBool(p.RebootRequired),
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Runner runs the hooks of queued results in one goroutine.
type Runner struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	queue   []deploy.Final
	wake    chan struct{}
	closing bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// New validates cfg and starts the runner. A config without command and
// webhook returns a runner that does nothing. Close stops it.
func New(cfg Config, log hclog.Logger) (*Runner, error) {
	if len(cfg.Command) > 0 && cfg.Command[0] == "" {
		return nil, fmt.Errorf("%w: the command's program is empty", ErrInvalidConfig)
	}
	if cfg.WebhookURL != "" {
		if err := ValidateWebhookURL(cfg.WebhookURL); err != nil {
			return nil, fmt.Errorf("%w: webhook: %v", ErrInvalidConfig, err)
		}
	}
	if cfg.WebhookAttempts < 0 || cfg.WebhookAttempts > MaxWebhookAttempts {
		return nil, fmt.Errorf("%w: webhook attempts %d not between 1 and %d", ErrInvalidConfig, cfg.WebhookAttempts, MaxWebhookAttempts)
	}
	if cfg.CommandTimeout < 0 || cfg.WebhookTimeout < 0 || cfg.Backoff < 0 || cfg.Queue < 0 {
		return nil, fmt.Errorf("%w: negative timeout, backoff or queue", ErrInvalidConfig)
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.WebhookTimeout == 0 {
		cfg.WebhookTimeout = DefaultWebhookTimeout
	}
	if cfg.WebhookAttempts == 0 {
		cfg.WebhookAttempts = DefaultWebhookAttempts
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Queue == 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: cfg.WebhookTimeout}}
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, log: log.Named("hooks"), wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// Enabled reports whether a command or a webhook is configured.
func (r *Runner) Enabled() bool { return len(r.cfg.Command) > 0 || r.cfg.WebhookURL != "" }

// Observe queues f for the hooks and returns at once.
func (r *Runner) Observe(f deploy.Final) {
	if !r.Enabled() {
		return
	}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return
	}
	if len(r.queue) >= r.cfg.Queue {
		r.log.Warn("result hook queue full: dropping the oldest result", "deployment", r.queue[0].ID)
		r.queue = r.queue[1:]
	}
	r.queue = append(r.queue, f)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close runs the hooks of the results already queued, for at most grace,
// then stops the runner: a hook still running is cancelled.
func (r *Runner) Close(grace time.Duration) {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	t := time.AfterFunc(grace, r.cancel)
	<-r.done
	t.Stop()
	r.cancel()
}

func (r *Runner) loop() {
	defer close(r.done)
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			closing := r.closing
			r.mu.Unlock()
			if closing || r.ctx.Err() != nil {
				return
			}
			select {
			case <-r.wake:
			case <-r.ctx.Done():
				return
			}
			continue
		}
		f := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if r.ctx.Err() != nil {
			r.log.Warn("agent stopping: result hook not run", "deployment", f.ID)
			continue
		}
		r.run(f)
	}
}

func (r *Runner) run(f deploy.Final) {
	p := NewPayload(f, r.cfg.Version)
	body, err := json.Marshal(p)
	if err != nil {
		r.log.Error("result hook payload", "deployment", f.ID, "error", err)
		return
	}
	if len(r.cfg.Command) > 0 {
		r.runCommand(p, body)
	}
	if r.cfg.WebhookURL != "" {
		r.post(p, body)
	}
}

// runCommand runs the command with the payload on stdin, logging its output.
func (r *Runner) runCommand(p Payload, body []byte) {
	log := r.log.With("deployment", p.Deployment, "command", r.cfg.Command[0])
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Command[0], r.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), p.env()...)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			log.Info("result hook output", "line", line)
		}
	}
	if out.cut {
		log.Warn("result hook output truncated", "kept_bytes", maxOutput)
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		log.Error("result hook command killed: took longer than its timeout", "timeout", r.cfg.CommandTimeout)
	case err != nil:
		log.Error("result hook command failed", "error", err, "elapsed", time.Since(start).Round(time.Millisecond))
	default:
		log.Info("result hook command ran", "elapsed", time.Since(start).Round(time.Millisecond))
	}
}

// post sends the payload to the webhook, retrying a bounded number of times.
func (r *Runner) post(p Payload, body []byte) {
	log := r.log.With("deployment", p.Deployment, "webhook", redact(r.cfg.WebhookURL))
	backoff := r.cfg.Backoff
	for attempt := 1; attempt <= r.cfg.WebhookAttempts; attempt++ {
		retry, err := r.postOnce(body)
		if err == nil {
			log.Info("result webhook delivered", "attempt", attempt)
			return
		}
		if !retry || attempt == r.cfg.WebhookAttempts {
			log.Error("result webhook failed", "attempt", attempt, "error", err)
			return
		}
		log.Warn("result webhook attempt failed; retrying", "attempt", attempt, "in", backoff, "error", err)
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			log.Error("result webhook abandoned: agent stopping", "attempt", attempt)
			return
		}
		backoff *= 2
	}
}

// postOnce makes one attempt; retry says whether another could succeed.
func (r *Runner) postOnce(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "panther-agent/"+r.cfg.Version)
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return true, errors.New(redactErr(err, r.cfg.WebhookURL))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("server answered %s", resp.Status)
	default:
		return false, fmt.Errorf("server answered %s (not retried)", resp.Status)
	}
}

// redact drops a URL's user info, path and query from log lines: webhook
// URLs often carry their secret there.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, redact(raw))
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.cut = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
