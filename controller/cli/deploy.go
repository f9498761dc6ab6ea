package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/pkg/archive"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

type deployOpts struct {
	flake          string
	dryRun         bool
	buildOnly      bool
	boot           bool
	yes            bool
	noConfirm      bool
	failOnWarnings bool
	confirmTimeout time.Duration
	critical       string
	logDir         string
}

func (c *CLI) deployCmd() *command {
	o := &deployOpts{}
	return &command{
		name: "deploy", usage: "deploy <host> [--dry-run | --build-only | --boot] [--yes] [--flake DIR]",
		short: "Build, dry-activate and (after you agree) switch a host to its flake configuration.",
		long: `The agent on the host builds nixosConfigurations.<host> from the flake source you
upload, dry-activates it and shows what would change; after you agree it switches,
checks health, and pantherctl confirms over a new tailnet connection. Without that
confirmation the host rolls itself back when --confirm-timeout runs out.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.flake, "flake", ".", "flake directory")
			fs.BoolVar(&o.dryRun, "dry-run", false, "build and dry-activate only; change nothing")
			fs.BoolVar(&o.buildOnly, "build-only", false, "build only")
			fs.BoolVar(&o.boot, "boot", false, "make it the boot default; it becomes active at the next boot")
			fs.BoolVar(&o.yes, "yes", false, "switch without asking (for CI)")
			fs.BoolVar(&o.noConfirm, "no-confirm", false, "do not confirm: let the dead-man roll the host back (to test it)")
			fs.BoolVar(&o.failOnWarnings, "fail-on-warnings", false, "abort when the configuration has warnings")
			fs.DurationVar(&o.confirmTimeout, "confirm-timeout", 0, "confirmation window after the switch (default: the agent's, 60s)")
			fs.StringVar(&o.critical, "critical-units", "", "comma-separated units that must be active after the switch")
			fs.StringVar(&o.logDir, "log-dir", "logs", "where the controller-side logs go (logs/deploy/<mode>-<host>-<time>.log)")
		},
		run: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return exitf(ExitUsage, "deploy needs exactly one host name")
			}
			modes := 0
			for _, b := range []bool{o.dryRun, o.buildOnly, o.boot} {
				if b {
					modes++
				}
			}
			if modes > 1 {
				return exitf(ExitUsage, "--dry-run, --build-only and --boot exclude each other")
			}
			return c.deploy(ctx, args[0], o)
		},
	}
}

func (o *deployOpts) mode() string {
	switch {
	case o.dryRun:
		return "dry-run"
	case o.buildOnly:
		return "build"
	case o.boot:
		return "boot"
	}
	return "switch"
}

// packSource packs the flake the way nix sees it into a temp file.
func (c *CLI) packSource(ctx context.Context, dir string) (*os.File, archive.Packed, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, archive.Packed{}, err
	}
	if _, err := os.Stat(filepath.Join(abs, "flake.nix")); err != nil {
		return nil, archive.Packed{}, exitf(ExitError, "%s has no flake.nix: pass --flake DIR", abs)
	}
	f, err := os.CreateTemp("", "panther-source-*.tar")
	if err != nil {
		return nil, archive.Packed{}, err
	}
	os.Remove(f.Name())
	p, err := archive.Pack(ctx, abs, f)
	if err != nil {
		f.Close()
		return nil, archive.Packed{}, exitf(ExitError, "packing %s: %v", abs, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, archive.Packed{}, err
	}
	return f, p, nil
}

func (c *CLI) openLog(dir, mode, host string) (*os.File, string) {
	p := filepath.Join(dir, "deploy", fmt.Sprintf("%s-%s-%s.log", mode, host, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		fmt.Fprintf(c.io.Stderr, "warning: no controller log: %v\n", err)
		return nil, ""
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(c.io.Stderr, "warning: no controller log: %v\n", err)
		return nil, ""
	}
	return f, p
}

func (c *CLI) deploy(ctx context.Context, host string, o *deployOpts) error {
	s, err := c.signer()
	if err != nil {
		return err
	}
	src, packed, err := c.packSource(ctx, o.flake)
	if err != nil {
		return err
	}
	defer src.Close()
	logf, logPath := c.openLog(o.logDir, o.mode(), host)
	if logf != nil {
		defer logf.Close()
	}
	r := &reporter{c: c, host: host, logw: logf, start: time.Now()}
	res, err := c.deployHost(ctx, r, s, host, src, packed, o)
	if logPath != "" {
		if !c.g.json {
			fmt.Fprintf(c.io.Stdout, "%s: full log: %s\n", host, logPath)
		}
	}
	if c.g.json {
		c.jsonSummary(host, res, err, logPath)
	}
	if err != nil {
		return err
	}
	code := exitFor(res)
	if code != ExitOK {
		msg := fmt.Sprintf("%s: %s", host, outcomeName(res.Outcome))
		if res.Message != "" {
			msg += ": " + res.Message
		}
		if logPath != "" {
			msg += " (full log: " + logPath + ")"
		}
		return exitf(code, "%s", msg)
	}
	return nil
}

func (c *CLI) jsonSummary(host string, res *agentv1.Result, err error, logPath string) {
	out := map[string]any{"summary": true, "host": host, "log": logPath}
	if res != nil {
		out["outcome"] = outcomeName(res.Outcome)
		out["message"] = res.Message
		out["storePath"] = res.StorePath
		out["generation"] = res.Generation
		out["exitCode"] = exitFor(res)
	}
	if err != nil {
		out["error"] = err.Error()
	}
	writeJSON(c.io.Stdout, out)
}

// deployHost runs one host's deployment from upload to confirmation.
func (c *CLI) deployHost(ctx context.Context, r *reporter, s client.Signer, host string, src *os.File, packed archive.Packed, o *deployOpts) (*agentv1.Result, error) {
	for _, u := range packed.Untracked {
		r.line("warning: %s is not tracked by git; nix ignores it (git add it to include it)", u)
	}
	n, err := c.connectTailnet(ctx)
	if err != nil {
		return nil, err
	}
	defer n.close()
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	r.line("==> upload %s (%d files, %d bytes)", packed.Digest[:19], packed.Files, packed.Bytes)
	t0 := time.Now()
	if _, err := src.Seek(0, 0); err != nil {
		return nil, err
	}
	sent, err := conn.Upload(ctx, s, packed.Digest, src)
	if err != nil {
		return nil, rpcError(host, err)
	}
	if sent == 0 {
		r.line("    the agent already has this source; nothing sent")
	} else {
		r.line("    upload done in %s (%d bytes)", time.Since(t0).Round(time.Millisecond), sent)
	}

	intent := func(a agentv1.Action, expected string) *agentv1.Intent {
		in := &agentv1.Intent{
			Action: a, DeploymentId: client.NewDeploymentID(time.Now()), SourceDigest: packed.Digest,
			SourceSubdir: packed.Subdir, FlakeAttr: host, ExpectedStorePath: expected,
			FailOnWarnings: o.failOnWarnings, ExtraCriticalUnits: splitList(o.critical),
		}
		if o.confirmTimeout > 0 {
			in.ConfirmTimeout = durationpb.New(o.confirmTimeout)
		}
		return in
	}
	run := func(in *agentv1.Intent) (*followed, error) {
		st, err := conn.Deploy(ctx, s, in)
		if err != nil {
			return nil, rpcError(host, err)
		}
		f := &followed{}
		if err := r.follow(st, f); err != nil {
			return nil, rpcError(host, err)
		}
		return f, nil
	}

	switch o.mode() {
	case "build":
		f, err := run(intent(agentv1.Action_ACTION_BUILD, ""))
		if err != nil {
			return nil, err
		}
		return f.result, nil
	case "dry-run":
		f, err := run(intent(agentv1.Action_ACTION_DRY_ACTIVATE, ""))
		if err != nil {
			return nil, err
		}
		return f.result, nil
	}

	action := agentv1.Action_ACTION_SWITCH
	if o.boot {
		action = agentv1.Action_ACTION_BOOT
	}
	expected := ""
	if !o.yes {
		if !c.io.IsTerminal() {
			return nil, exitf(ExitUsage, "no terminal to ask whether to switch %s: pass --yes to switch without asking, or --dry-run to look first", host)
		}
		f, err := run(intent(agentv1.Action_ACTION_DRY_ACTIVATE, ""))
		if err != nil {
			return nil, err
		}
		if f.result.GetOutcome() != agentv1.Outcome_OUTCOME_DRY_ACTIVATED {
			return f.result, nil
		}
		verb := "switch"
		if o.boot {
			verb = "make the boot default of"
		}
		if !c.ask(fmt.Sprintf("%s %s to %s? [y/N] ", verb, host, f.summary.GetNewStorePath())) {
			return nil, exitf(ExitFailed, "%s: not switched (you said no); nothing changed", host)
		}
		// The switch applies exactly the store path that was dry-activated.
		expected = f.summary.GetNewStorePath()
	}
	in := intent(action, expected)
	st, err := conn.Deploy(ctx, s, in)
	if err != nil {
		return nil, rpcError(host, err)
	}
	if o.boot {
		f := &followed{}
		if err := r.follow(st, f); err != nil {
			return nil, rpcError(host, err)
		}
		return f.result, nil
	}
	window := o.confirmTimeout
	if window == 0 {
		window = time.Minute
	}
	return c.finishSwitch(ctx, n, r, s, host, in.DeploymentId, st, window, o.noConfirm)
}

func (c *CLI) ask(q string) bool {
	fmt.Fprint(c.io.Stderr, q)
	line, _ := bufio.NewReader(c.io.Stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
