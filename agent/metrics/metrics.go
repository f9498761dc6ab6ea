// Package metrics keeps the agent's Prometheus metrics, fed by the deploy
// engine's final results (see deploy.Deps.OnResult), and writes them in the
// Prometheus text exposition format (version 0.0.4). It serves nothing by
// itself: the agent mounts [Metrics.Handler] on its tailnet listener behind
// the same peer check as the gRPC API.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
)

// ConfirmBuckets are the upper bounds, in seconds, of the confirm latency
// histogram: from a scripted confirm (well under a second) to a person
// reading a diff.
var ConfirmBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900}

// Options configure [New].
type Options struct {
	// Version is the agent's version, exported as panther_agent_info.
	Version string
	// Host is the agent's host name, a label of panther_agent_info.
	Host string
	// BootedSystem and CurrentSystem are compared at each scrape: a new
	// kernel, initrd or kernel modules in the current system mean a reboot
	// is required, as system.autoUpgrade decides. Default:
	// /run/booted-system and /run/current-system; "-" turns the check off.
	BootedSystem, CurrentSystem string
}

type key struct{ action, result string }

// Metrics is safe for concurrent use.
type Metrics struct {
	opts Options

	mu          sync.Mutex
	deployments map[key]uint64
	rollbacks   map[string]uint64 // by trigger: automatic, requested
	last        *deploy.Final
	rebootByRes bool
	confirm     histogram
}

// New returns metrics with every counter at zero.
func New(opts Options) *Metrics {
	if opts.BootedSystem == "" {
		opts.BootedSystem = "/run/booted-system"
	}
	if opts.CurrentSystem == "" {
		opts.CurrentSystem = "/run/current-system"
	}
	m := &Metrics{
		opts:        opts,
		deployments: map[key]uint64{},
		rollbacks:   map[string]uint64{"automatic": 0, "requested": 0},
		confirm:     histogram{bounds: ConfirmBuckets, counts: make([]uint64, len(ConfirmBuckets))},
	}
	// The outcomes an alert is written against exist from the start.
	for _, r := range []journal.State{journal.StateConfirmed, journal.StateRolledBack, journal.StateFailed, journal.StateManual} {
		m.deployments[key{string(deploy.ActionSwitch), string(r)}] = 0
	}
	return m
}

// Observe records one final result. It never blocks on I/O.
func (m *Metrics) Observe(f deploy.Final) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deployments[key{string(f.Action), string(f.Result.Outcome)}]++
	if f.Result.Outcome == journal.StateRolledBack {
		m.rollbacks["automatic"]++
	}
	if f.Action == deploy.ActionRollback && f.Result.Outcome == journal.StateConfirmed {
		m.rollbacks["requested"]++
	}
	if f.Result.Outcome == journal.StateConfirmed && f.Action != deploy.ActionRollback {
		m.confirm.observe(f.ConfirmLatency.Seconds())
	}
	switch f.Result.Outcome {
	case journal.StateConfirmed, journal.StateBootScheduled, journal.StateRolledBack, journal.StateManual:
		// Only results that change the running system or the boot default
		// change whether a reboot is pending.
		m.rebootByRes = f.RebootRequired
	}
	last := f
	m.last = &last
}

// Handler serves the metrics on GET (and HEAD) of any path it is mounted at.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		m.WriteTo(w)
	})
}

// WriteTo writes every metric in the text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	reboot := m.rebootPendingOnDisk()
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	family(&b, "panther_agent_info", "gauge", "The agent's version and host; always 1.")
	sample(&b, "panther_agent_info", labels("version", m.opts.Version, "host", m.opts.Host), 1)

	family(&b, "panther_deployments_total", "counter", "Deployments that reached a final result since the agent started, by action and result.")
	keys := make([]key, 0, len(m.deployments))
	for k := range m.deployments {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].action != keys[j].action {
			return keys[i].action < keys[j].action
		}
		return keys[i].result < keys[j].result
	})
	for _, k := range keys {
		sample(&b, "panther_deployments_total", labels("action", k.action, "result", k.result), float64(m.deployments[k]))
	}

	family(&b, "panther_rollbacks_total", "counter", "Rollbacks since the agent started: automatic (health, dead-man switch, failed switch) or requested (pantherctl rollback).")
	for _, t := range []string{"automatic", "requested"} {
		sample(&b, "panther_rollbacks_total", labels("trigger", t), float64(m.rollbacks[t]))
	}

	family(&b, "panther_last_deployment_timestamp_seconds", "gauge", "Unix time the last deployment reached its final result; 0 if none since the agent started.")
	family(&b, "panther_last_deployment_success", "gauge", "1 if the last deployment ended as asked (confirmed, built, dry-activated, boot default set), else 0.")
	family(&b, "panther_last_deployment_info", "gauge", "The last deployment's id, action and result; always 1.")
	if l := m.last; l != nil {
		sample(&b, "panther_last_deployment_timestamp_seconds", "", float64(l.Finished.UnixMilli())/1000)
		sample(&b, "panther_last_deployment_success", "", boolValue(success(l.Result.Outcome)))
		sample(&b, "panther_last_deployment_info", labels("deployment", l.ID, "action", string(l.Action), "result", string(l.Result.Outcome)), 1)
	} else {
		sample(&b, "panther_last_deployment_timestamp_seconds", "", 0)
	}

	family(&b, "panther_confirm_latency_seconds", "histogram", "Time a switched system waited for the controller's confirmation.")
	m.confirm.write(&b, "panther_confirm_latency_seconds")

	family(&b, "panther_reboot_required", "gauge", "1 if the running system is not fully active until a reboot (switch exit 100, a boot-only deployment, or a new kernel, initrd or kernel modules).")
	sample(&b, "panther_reboot_required", "", boolValue(reboot || m.rebootByRes))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func success(s journal.State) bool {
	switch s {
	case journal.StateConfirmed, journal.StateBuilt, journal.StateDryActivated, journal.StateBootScheduled:
		return true
	}
	return false
}

// rebootPendingOnDisk compares the booted system's kernel, initrd and
// kernel modules with the current system's.
func (m *Metrics) rebootPendingOnDisk() bool {
	if m.opts.BootedSystem == "-" || m.opts.CurrentSystem == "-" {
		return false
	}
	for _, name := range []string{"kernel", "initrd", "kernel-modules"} {
		a, errA := filepath.EvalSymlinks(filepath.Join(m.opts.BootedSystem, name))
		b, errB := filepath.EvalSymlinks(filepath.Join(m.opts.CurrentSystem, name))
		if os.IsNotExist(errA) && os.IsNotExist(errB) {
			continue
		}
		if errA != nil || errB != nil {
			return false // cannot tell: do not cry wolf
		}
		if a != b {
			return true
		}
	}
	return false
}

type histogram struct {
	bounds []float64
	counts []uint64 // non-cumulative, per bucket
	sum    float64
	count  uint64
}

func (h *histogram) observe(v float64) {
	for i, le := range h.bounds {
		if v <= le {
			h.counts[i]++
			break
		}
	}
	h.sum += v
	h.count++
}

func (h *histogram) write(b *strings.Builder, name string) {
	var cum uint64
	for i, le := range h.bounds {
		cum += h.counts[i]
		sample(b, name+"_bucket", labels("le", formatFloat(le)), float64(cum))
	}
	sample(b, name+"_bucket", labels("le", "+Inf"), float64(h.count))
	sample(b, name+"_sum", "", h.sum)
	sample(b, name+"_count", "", float64(h.count))
}

func family(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func sample(b *strings.Builder, name, lbls string, v float64) {
	fmt.Fprintf(b, "%s%s %s\n", name, lbls, formatFloat(v))
}

// labels renders name/value pairs as {a="x",b="y"}.
func labels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+`="`+escapeLabel(kv[i+1])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
