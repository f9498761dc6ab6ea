// Package buildall builds many hosts' configurations in parallel, at most
// Jobs at once, each into its own log file, and sums up which passed and
// which failed. What "build" means (local nix, or the host's agent) is the
// caller's Builder; one host's failure never stops the others.
package buildall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/controller/termsafe"
)

// ErrNoHosts: Run was given no hosts.
var ErrNoHosts = errors.New("no hosts to build")

// Builder builds one host's configuration, writing its full output to log,
// and returns the built store path. It must be safe for concurrent use.
type Builder interface {
	Build(ctx context.Context, host string, log io.Writer) (string, error)
}

// BuilderFunc adapts a function to Builder.
type BuilderFunc func(ctx context.Context, host string, log io.Writer) (string, error)

// Build implements Builder.
func (f BuilderFunc) Build(ctx context.Context, host string, log io.Writer) (string, error) {
	return f(ctx, host, log)
}

// Kind is what happened to a host.
type Kind string

// Kinds of Event.
const (
	Started Kind = "started" // the host's build began
	Done    Kind = "done"    // it built
	Failed  Kind = "failed"  // it did not (or never started because the run was cancelled)
)

// Event is one step of one host, as OnEvent sees it.
type Event struct {
	Kind    Kind
	Host    string
	Time    time.Time
	Elapsed time.Duration // Done and Failed: how long the build ran
	Path    string        // Done: the built store path
	Err     error         // Failed: why
	Log     string        // the host's log file ("" without LogDir)
}

// Options configure Run.
type Options struct {
	// Jobs is how many builds run at once. Default (0 or less):
	// runtime.NumCPU().
	Jobs int
	// LogDir gets one <host>.log per host holding the builder's full output;
	// it is created if missing. Default (""): no log files (output discarded).
	LogDir string
	// OnEvent sees every event; calls are serialized, so it need not lock.
	// Default (nil): events are only logged.
	OnEvent func(Event)
	// Now is the clock. Default (nil): time.Now.
	Now func() time.Time
}

// HostResult is how one host's build ended.
type HostResult struct {
	Host    string
	OK      bool
	Path    string // the built store path when OK
	Err     error  // why not, when !OK
	Elapsed time.Duration
	Log     string // its log file ("" without LogDir)
}

// Summary is the outcome of a whole run, hosts in the order given.
type Summary struct {
	Results []HostResult
	Elapsed time.Duration
}

// Passed is how many hosts built.
func (s Summary) Passed() int {
	n := 0
	for _, r := range s.Results {
		if r.OK {
			n++
		}
	}
	return n
}

// Failed is how many hosts did not build.
func (s Summary) Failed() int { return len(s.Results) - s.Passed() }

// Total is how many hosts were built or tried.
func (s Summary) Total() int { return len(s.Results) }

// OK reports whether every host built.
func (s Summary) OK() bool { return s.Total() > 0 && s.Failed() == 0 }

// FailedHosts returns the results of the hosts that did not build.
func (s Summary) FailedHosts() []HostResult {
	var out []HostResult
	for _, r := range s.Results {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

// WriteText writes the summary for people: the counts, then either
// "All hosts built successfully!" or each failed host with its log.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nBuild summary (%s):\n", s.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(w, "Passed: %d\nFailed: %d\nTotal: %d\n", s.Passed(), s.Failed(), s.Total())
	failed := s.FailedHosts()
	if s.OK() {
		fmt.Fprintln(w, "\nAll hosts built successfully!")
		return
	}
	if len(failed) == 0 {
		return
	}
	width := 0
	for _, r := range failed {
		width = max(width, len(r.Host))
	}
	fmt.Fprintln(w, "\nFailed hosts:")
	for _, r := range failed {
		where := r.Log
		if where == "" {
			where = oneLine(r.Err)
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.Host, termsafe.Line(where))
	}
}

// Runner builds hosts with a Builder.
type Runner struct {
	b    Builder
	opts Options
	log  hclog.Logger
}

// New returns a Runner; log may be nil.
func New(b Builder, opts Options, log hclog.Logger) *Runner {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Runner{b: b, opts: opts, log: log.Named("buildall")}
}

// Jobs is how many builds run at once.
func (r *Runner) Jobs() int { return r.opts.Jobs }

// LogPath is where host's log goes ("" without LogDir).
func (r *Runner) LogPath(host string) string {
	if r.opts.LogDir == "" {
		return ""
	}
	return filepath.Join(r.opts.LogDir, host+".log")
}

// Run builds every host, at most Jobs at once, in the order given, and
// returns once all have ended. When ctx ends, builds in flight see it and
// hosts not yet started fail with ctx's error; Run then returns the summary
// and ctx's error. A host's failure is in the summary, not the error.
func (r *Runner) Run(ctx context.Context, hosts []string) (Summary, error) {
	if len(hosts) == 0 {
		return Summary{}, ErrNoHosts
	}
	if r.opts.LogDir != "" {
		if err := os.MkdirAll(r.opts.LogDir, 0o755); err != nil {
			return Summary{}, fmt.Errorf("build logs: %w", err)
		}
	}
	start := r.opts.Now()
	results := make([]HostResult, len(hosts))
	var emitMu sync.Mutex
	emit := func(ev Event) {
		r.log.Debug("host", "host", ev.Host, "event", ev.Kind, "elapsed", ev.Elapsed, "error", ev.Err)
		if r.opts.OnEvent == nil {
			return
		}
		emitMu.Lock()
		defer emitMu.Unlock()
		r.opts.OnEvent(ev)
	}

	// Jobs workers take hosts in order; Run owns them and waits for all.
	// Once ctx ends, the hosts left are failed without being started.
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.opts.Jobs, len(hosts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := ctx.Err(); err != nil {
					results[i] = HostResult{Host: hosts[i], Err: fmt.Errorf("not started: %w", err)}
					emit(Event{Kind: Failed, Host: hosts[i], Time: r.opts.Now(), Err: results[i].Err})
					continue
				}
				results[i] = r.buildOne(ctx, hosts[i], emit)
			}
		}()
	}
	for i := range hosts {
		next <- i
	}
	close(next)
	wg.Wait()
	sum := Summary{Results: results, Elapsed: r.opts.Now().Sub(start)}
	r.log.Info("done", "passed", sum.Passed(), "failed", sum.Failed(), "elapsed", sum.Elapsed)
	return sum, ctx.Err()
}

// buildOne builds one host into its log file.
func (r *Runner) buildOne(ctx context.Context, host string, emit func(Event)) HostResult {
	res := HostResult{Host: host, Log: r.LogPath(host)}
	t0 := r.opts.Now()
	emit(Event{Kind: Started, Host: host, Time: t0, Log: res.Log})
	var w io.Writer = io.Discard
	var f *os.File
	if res.Log != "" {
		var err error
		f, err = os.Create(res.Log)
		if err != nil {
			res.Err = fmt.Errorf("build log: %w", err)
			res.Log = ""
			emit(Event{Kind: Failed, Host: host, Time: r.opts.Now(), Err: res.Err})
			return res
		}
		w = &lockedWriter{w: f}
		fmt.Fprintf(w, "# %s: build started %s\n", host, t0.UTC().Format(time.RFC3339))
	}
	res.Path, res.Err = r.b.Build(ctx, host, w)
	res.Elapsed = r.opts.Now().Sub(t0)
	res.OK = res.Err == nil
	if f != nil {
		if res.OK {
			fmt.Fprintf(w, "# %s: built %s in %s\n", host, termsafe.Line(res.Path), res.Elapsed.Round(time.Millisecond))
		} else {
			fmt.Fprintf(w, "# %s: FAILED after %s: %s\n", host, res.Elapsed.Round(time.Millisecond), termsafe.Line(fmt.Sprint(res.Err)))
		}
		if err := f.Close(); err != nil {
			r.log.Warn("closing build log", "host", host, "error", err)
		}
	}
	ev := Event{Kind: Done, Host: host, Time: r.opts.Now(), Elapsed: res.Elapsed, Path: res.Path, Log: res.Log}
	if !res.OK {
		ev.Kind, ev.Err = Failed, res.Err
	}
	emit(ev)
	return res
}

// lockedWriter lets a builder write from several goroutines (nix's stderr
// reader and its own messages) without interleaving within a write.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// oneLine is err's message on one line.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
