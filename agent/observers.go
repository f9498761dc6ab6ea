package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/hooks"
	"github.com/pantheros/panther/agent/metrics"
	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/internal/version"
)

// observers are what the agent hangs on the deploy engine's final results:
// metrics (when metrics.port is set) and result hooks (when configured).
type observers struct {
	metrics *metrics.Metrics // nil: no endpoint
	hooks   *hooks.Runner
	log     hclog.Logger
	srv     *http.Server
}

func newObservers(cfg *config.Config, log hclog.Logger) (*observers, error) {
	o := &observers{log: log}
	if cfg.Metrics.Port != 0 {
		o.metrics = metrics.New(metrics.Options{Version: version.Version, Host: cfg.HostName, CurrentSystem: cfg.CurrentSystem})
	}
	h := cfg.ResultHooks
	r, err := hooks.New(hooks.Config{
		Command: h.Command, CommandTimeout: h.CommandTimeout.Duration,
		WebhookURL: h.WebhookURL, WebhookTimeout: h.WebhookTimeout.Duration, WebhookAttempts: h.WebhookAttempts,
		Version: version.Version,
	}, log)
	if err != nil {
		return nil, err
	}
	o.hooks = r
	return o, nil
}

// onResult is the engine's Deps.OnResult: it returns at once.
func (o *observers) onResult(f deploy.Final) {
	if o.metrics != nil {
		o.metrics.Observe(f)
	}
	o.hooks.Observe(f)
}

// serveMetrics serves GET /metrics on ln (a tailnet listener) to the peers
// authz admits, until close.
func (o *observers) serveMetrics(ln net.Listener, authz *tailnet.Authorizer) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", o.metrics.Handler())
	o.srv = &http.Server{
		Handler:           authz.HTTPHandler(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          o.log.Named("metrics").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("metrics endpoint stopped", "error", err)
		}
	}()
}

// close stops the metrics endpoint and lets queued hooks finish briefly.
func (o *observers) close() {
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		o.srv.Shutdown(ctx)
		cancel()
	}
	o.hooks.Close(5 * time.Second)
}

// listenMetrics opens the metrics port on the tailnet node.
func listenMetrics(node *tailnet.Node, port int) (net.Listener, error) {
	ln, err := node.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("metrics listener on the tailnet: %w", err)
	}
	return ln, nil
}
