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
	"github.com/pantheros/panther/controller/termsafe"
	"github.com/pantheros/panther/internal/nix"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

type buildAllOpts struct {
	flake    string
	jobs     int
	logDir   string
	onAgents bool
	all      bool
	inputs   string
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
			fs.BoolVar(&o.all, "all", false, "every host of the flake (the default when no host is named)")
			fs.StringVar(&o.inputs, "inputs", inputs.Ship, "with --on-agents: "+inputsFlagUsage)
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
	addr := map[string]string{}
	for _, h := range hosts {
		addr[h.Name] = h.Addr()
	}
	b := buildall.BuilderFunc(func(ctx context.Context, host string, log io.Writer) (string, error) {
		return c.buildOnAgent(ctx, n, s, addr[host], host, io.NewSectionReader(src, 0, st.Size()), packed.Digest, packed.Subdir, inp, log)
	})
	return b, func() { n.close(); src.Close(); inp.Close() }, nil
}

// buildOnAgent runs one signed ACTION_BUILD deployment on addr's agent and
// writes its events to log.
func (c *CLI) buildOnAgent(ctx context.Context, n *network, s client.Signer, addr, host string, src io.Reader, digest, subdir string, inp *inputs.Set, log io.Writer) (string, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), termsafe.Line(fmt.Sprintf(format, args...)))
	}
	conn, err := c.dial(ctx, n, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	logf("==> upload %s to %s", digest, addr)
	sent, err := conn.Upload(ctx, s, digest, src)
	if err != nil {
		return "", rpcError(addr, err)
	}
	logf("    sent %d bytes", sent)
	if up, err := inp.Upload(ctx, conn, s); err != nil {
		return "", rpcError(addr, err)
	} else if len(inp.Inputs) > 0 {
		logf("    inputs: %d of %d sent (%d bytes)", up.Inputs, len(inp.Inputs), up.Bytes)
	}
	in := &agentv1.Intent{
		Action: agentv1.Action_ACTION_BUILD, DeploymentId: client.NewDeploymentID(time.Now()),
		SourceDigest: digest, SourceSubdir: subdir, FlakeAttr: host,
	}
	inp.Apply(in)
	logf("==> build %s (deployment %s)", host, in.DeploymentId)
	stream, err := conn.Deploy(ctx, s, in)
	if err != nil {
		return "", rpcError(addr, err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return "", fmt.Errorf("%s: the agent closed the stream before the build ended (pantherctl logs %s %s)", addr, addr, in.DeploymentId)
		}
		if err != nil {
			return "", rpcError(addr, err)
		}
		switch e := ev.Event.(type) {
		case *agentv1.DeployEvent_PhaseStarted:
			logf("==> %s", phaseName(e.PhaseStarted.Phase))
		case *agentv1.DeployEvent_PhaseFinished:
			f := e.PhaseFinished
			if f.Ok {
				logf("    %s done in %s", phaseName(f.Phase), f.Elapsed.AsDuration())
			} else {
				logf("!!  %s FAILED after %s: %s", phaseName(f.Phase), f.Elapsed.AsDuration(), f.Error)
			}
		case *agentv1.DeployEvent_Log:
			logf("    │ %s", e.Log.Line)
		case *agentv1.DeployEvent_Warning:
			logf("warning: %s", e.Warning.Message)
		case *agentv1.DeployEvent_Result:
			res := e.Result
			msg := outcomeName(res.Outcome)
			if res.Message != "" {
				msg += ": " + res.Message
			}
			logf("result: %s", msg)
			if res.Outcome != agentv1.Outcome_OUTCOME_BUILT {
				return "", errors.New(agentFailure(res))
			}
			return res.StorePath, nil
		}
	}
}

// agentFailure is one line saying why an agent's build failed: nix's last
// "error:" when the message carries one (the full output is in the log).
func agentFailure(res *agentv1.Result) string {
	msg := strings.Join(strings.Fields(res.Message), " ")
	if i := strings.LastIndex(msg, "error: "); i >= 0 {
		msg = msg[i:]
	}
	if res.Outcome == agentv1.Outcome_OUTCOME_FAILED && msg != "" {
		return msg
	}
	if msg == "" {
		return outcomeName(res.Outcome)
	}
	return outcomeName(res.Outcome) + ": " + msg
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
