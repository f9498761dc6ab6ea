package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pantheros/panther/controller/buildall"
	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inputs"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/controller/termsafe"
	"github.com/pantheros/panther/internal/nix"
)

type buildAllOpts struct {
	flake    string
	jobs     int
	logDir   string
	onAgents bool
	inputs   string
	all      bool
}

func (c *CLI) buildAllCmd() *command {
	o := &buildAllOpts{}
	return &command{
		name: "build-all", usage: "build-all [host|@tag...] [--jobs N] [--flake DIR] [--log-dir DIR] [--on-agents]",
		short: "Build every host's configuration (or the selected ones) and sum up which fail; for CI.",
		long: `Evaluates the flake's host list once, then builds each selected host's
nixosConfigurations.<host>.config.system.build.toplevel with the local nix, at most
--jobs at once; no agent is needed. The full nix output of each host goes to
<log-dir>/build/<host>.log. A host that fails to evaluate or build fails alone.
Exit status 0 when every host built, 3 otherwise.

--on-agents instead uploads the flake to each selected host's agent and has it build
its own configuration there (signed, as 'deploy --build-only'), all hosts at once.

Local nix reads NIX_CONFIG from the environment (flakes are always enabled).
With --json: one object per host event ({"host","event":"started|done|failed",...})
and a final {"summary":true,...}.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.flake, "flake", ".", "flake directory")
			fs.IntVar(&o.jobs, "jobs", 0, "how many hosts build at once (default: the number of CPUs)")
			fs.StringVar(&o.logDir, "log-dir", "logs", "where the per-host build logs go (<log-dir>/build/<host>.log)")
			fs.BoolVar(&o.onAgents, "on-agents", false, "build on each host's agent instead of locally")
			fs.StringVar(&o.inputs, "inputs", inputs.Ship, "with --on-agents: "+inputsFlagUsage)
			fs.BoolVar(&o.all, "all", false, "every host of the flake (the default when no host is named)")
		},
		run: func(ctx context.Context, args []string) error {
			if o.jobs < 0 {
				return exitf(ExitUsage, "--jobs must be positive")
			}
			return c.buildAll(ctx, args, o)
		},
	}
}

// flakeDirRef checks that dir holds a flake and returns its absolute path,
// which is also how nix is pointed at it (inside a git checkout nix then
// reads tracked files only, as deploy uploads them).
func flakeDirRef(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "flake.nix")); err != nil {
		return "", exitf(ExitError, "%s has no flake.nix: pass --flake DIR", abs)
	}
	return abs, nil
}

func (c *CLI) buildAll(ctx context.Context, selectors []string, o *buildAllOpts) error {
	dir, err := flakeDirRef(o.flake)
	if err != nil {
		return err
	}
	nx := nix.New(nix.Options{}, c.log)
	inv, err := inventory.Load(dir)
	if err != nil {
		return exitf(ExitError, "%v", err)
	}
	t0 := time.Now()
	flakeHosts, err := nx.Hosts(ctx, dir)
	if err != nil {
		return exitf(ExitError, "the flake's host list does not evaluate: %v", nixErrLine(err))
	}
	c.log.Debug("flake hosts", "hosts", flakeHosts, "elapsed", time.Since(t0))
	hosts, err := inv.Select(flakeHosts, selectors, o.all || len(selectors) == 0)
	if err != nil {
		return exitf(ExitUsage, "%v", err)
	}

	var b buildall.Builder
	where := "locally"
	if o.onAgents {
		ab, closeFn, err := c.agentBuilder(ctx, dir, hosts, o.inputs)
		if err != nil {
			return err
		}
		defer closeFn()
		b, where = ab, "on their agents"
		if o.jobs == 0 {
			o.jobs = len(hosts) // the agents build, not this machine
		}
	} else {
		b = localBuilder(nx, dir)
	}
	if o.jobs == 0 {
		o.jobs = runtime.NumCPU()
	}

	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	logDir := filepath.Join(o.logDir, "build")
	r := buildall.New(b, buildall.Options{Jobs: o.jobs, LogDir: logDir, OnEvent: c.buildAllEvent}, c.log)
	c.printf("==> building %d hosts %s, %d at a time (logs in %s)\n", len(names), where, r.Jobs(), logDir)
	sum, runErr := r.Run(ctx, names)
	if errors.Is(runErr, buildall.ErrNoHosts) {
		return exitf(ExitUsage, "no hosts selected")
	}
	if runErr != nil && !errors.Is(runErr, ctx.Err()) {
		return exitf(ExitError, "%v", runErr)
	}
	code := ExitOK
	if !sum.OK() {
		code = ExitFailed
	}
	if c.g.json {
		c.buildAllSummaryJSON(sum, code)
	} else {
		sum.WriteText(c.io.Stdout)
	}
	if runErr != nil {
		return exitf(ExitError, "interrupted: %v", runErr)
	}
	if code != ExitOK {
		return exitf(code, "%d of %d hosts failed to build", sum.Failed(), sum.Total())
	}
	return nil
}

// localBuilder builds a host's toplevel with the local nix, writing every
// line nix prints to the host's log.
func localBuilder(nx *nix.Nix, flakeRef string) buildall.Builder {
	return buildall.BuilderFunc(func(ctx context.Context, host string, log io.Writer) (string, error) {
		inst, err := nix.Toplevel(flakeRef, host)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(log, "$ nix build --json --no-link -L %s\n", inst)
		return nx.Build(ctx, inst, func(line string) { fmt.Fprintln(log, termsafe.Line(line)) })
	})
}

// nixErrLine is the one line of an error worth showing in a progress line:
// for a nix failure its "error:" line (the full output is in the log).
func nixErrLine(err error) string {
	var ne *nix.Error
	if errors.As(err, &ne) {
		if s := ne.Summary(); s != "" {
			return s
		}
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// agentBuilder uploads the flake to each host's agent and has it build
// there. The returned func closes the shared tailnet node and source.
func (c *CLI) agentBuilder(ctx context.Context, dir string, hosts []inventory.Host, inputsMode string) (buildall.Builder, func(), error) {
	s, err := c.signer()
	if err != nil {
		return nil, nil, err
	}
	src, packed, err := c.packSource(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := src.Stat()
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	inp, err := c.prepareInputs(ctx, dir, inputsMode)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	for _, u := range packed.Untracked {
		fmt.Fprintf(c.io.Stderr, "warning: %s is not tracked by git; nix ignores it (git add it to include it)\n", u)
	}
	n, err := c.connectTailnet(ctx)
	if err != nil {
		src.Close()
		inp.Close()
		return nil, nil, err
	}
	fl := c.fleet(n, s)
	upload := &client.Upload{Fleet: fl, Digest: packed.Digest, Subdir: packed.Subdir, Files: packed.Files, Bytes: packed.Bytes,
		Open: func() io.Reader { return io.NewSectionReader(src, 0, st.Size()) }}
	withInputs(fl, upload, inp) // the locked inputs and the revision too (inputs.go)
	targets := map[string]rollout.Host{}
	for _, h := range hosts {
		targets[h.Name] = rolloutHost(h)
	}
	b := buildall.BuilderFunc(func(ctx context.Context, host string, log io.Writer) (string, error) {
		return c.buildOnAgent(ctx, fl, upload, targets[host], log)
	})
	return b, func() { fl.Close(); n.close(); src.Close(); inp.Close() }, nil
}

// buildOnAgent has host's agent build its configuration (a signed build
// deployment, through the rollout core) and writes the events to log with
// the same renderer as deploy.
func (c *CLI) buildOnAgent(ctx context.Context, fl *client.Fleet, src rollout.Source, host rollout.Host, log io.Writer) (string, error) {
	rd := newRenderer(c, false)
	rd.add(host.Name, log).quiet = true
	rep, err := rollout.New(fl, src, rd, rollout.Options{Mode: rollout.ModeBuild}, c.log).Run(ctx, []rollout.Host{host})
	if err != nil {
		return "", err
	}
	hr := rep.Hosts[0]
	switch {
	case hr.Err != nil:
		return "", agentExit(host.Address(), hr.Err)
	case hr.Result == nil:
		return "", fmt.Errorf("%s: no result", host.Address())
	case hr.Result.Outcome != rollout.OutcomeBuilt:
		return "", errors.New(agentFailure(hr.Result))
	}
	return hr.Result.StorePath, nil
}

// agentFailure is one line saying why an agent's build failed: nix's last
// "error:" when the message carries one (the full output is in the log).
func agentFailure(res *rollout.Result) string {
	msg := strings.Join(strings.Fields(res.Message), " ")
	if i := strings.LastIndex(msg, "error: "); i >= 0 {
		msg = msg[i:]
	}
	if res.Outcome == rollout.OutcomeFailed && msg != "" {
		return msg
	}
	if msg == "" {
		return res.Outcome.String()
	}
	return res.Outcome.String() + ": " + msg
}

// buildAllEvent prints one host event as a progress line or a JSON object.
func (c *CLI) buildAllEvent(ev buildall.Event) {
	if c.g.json {
		out := map[string]any{"host": ev.Host, "event": string(ev.Kind), "time": ev.Time.UTC().Format(time.RFC3339Nano)}
		if ev.Log != "" {
			out["log"] = ev.Log
		}
		if ev.Kind != buildall.Started {
			out["elapsedSeconds"] = ev.Elapsed.Seconds()
		}
		if ev.Path != "" {
			out["storePath"] = ev.Path
		}
		if ev.Err != nil {
			out["error"] = nixErrLine(ev.Err)
		}
		writeJSON(c.io.Stdout, out)
		return
	}
	el := ev.Elapsed.Round(100 * time.Millisecond)
	switch ev.Kind {
	case buildall.Started:
		fmt.Fprintf(c.io.Stdout, "%s: started\n", ev.Host)
	case buildall.Done:
		fmt.Fprintf(c.io.Stdout, "%s: done in %s (%s)\n", ev.Host, el, termsafe.Line(ev.Path))
	case buildall.Failed:
		msg := fmt.Sprintf("%s: FAILED after %s: %s", ev.Host, el, nixErrLine(ev.Err))
		if ev.Log != "" {
			msg += " (log: " + ev.Log + ")"
		}
		fmt.Fprintln(c.io.Stdout, termsafe.Line(msg))
	}
}

func (c *CLI) buildAllSummaryJSON(sum buildall.Summary, code int) {
	failed := []map[string]string{}
	for _, r := range sum.FailedHosts() {
		failed = append(failed, map[string]string{"host": r.Host, "log": r.Log, "error": nixErrLine(r.Err)})
	}
	outcome := "built"
	if code != ExitOK {
		outcome = "failed"
	}
	writeJSON(c.io.Stdout, map[string]any{
		"summary": true, "outcome": outcome, "exitCode": code,
		"passed": sum.Passed(), "failed": sum.Failed(), "total": sum.Total(),
		"failedHosts": failed, "elapsedSeconds": sum.Elapsed.Seconds(),
	})
}
