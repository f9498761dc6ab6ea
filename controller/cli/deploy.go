package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/nix"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

type deployOpts struct {
	flake          string
	all            bool
	dryRun         bool
	buildOnly      bool
	boot           bool
	yes            bool
	noConfirm      bool
	detach         bool
	failOnWarnings bool
	installBoot    bool
	keepGoing      bool
	force          bool
	jobs           int
	canary         int
	confirmTimeout time.Duration
	approveTimeout time.Duration // approve.go: how long the agents wait for your answer
	critical       string
	logDir         string
}

func (c *CLI) deployCmd() *command {
	o := &deployOpts{}
	return &command{
		name: "deploy", usage: "deploy <host|@tag>... | --all [--dry-run | --build-only | --boot] [--yes] [--force] [--jobs N] [--canary N]",
		short: "Build, dry-activate and (after you agree) switch hosts to their flake configuration.",
		long: `The agent on each host builds nixosConfigurations.<host> from the flake source you
upload, dry-activates it and shows what would change, then waits; your answer approves
(or declines) that same deployment (--approval-timeout), and after you agree it switches,
checks health, and pantherctl confirms from a brand-new, ephemeral tailnet node (so the
confirm proves that a node the host has never seen can still reach it). Without that
confirmation the host rolls itself back when --confirm-timeout runs out; the window is
counted from the end of the health checks (after the switch has ended), not from the
start of the switch. --no-confirm waits for that rollback and exits 4; with --detach it
returns (exit 0) as soon as the window is open.

Several hosts are deployed in parallel (--jobs); after the first failure no new host
is started unless --keep-going. --canary N deploys N hosts first and the rest only if
they were confirmed. Tags and per-host settings come from panther.json at the flake root.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.flake, "flake", ".", "flake directory")
			fs.BoolVar(&o.all, "all", false, "every host of the flake")
			fs.BoolVar(&o.dryRun, "dry-run", false, "build and dry-activate only; change nothing")
			fs.BoolVar(&o.buildOnly, "build-only", false, "build only")
			fs.BoolVar(&o.boot, "boot", false, "make it the boot default; it becomes active at the next boot")
			fs.BoolVar(&o.yes, "yes", false, "switch without asking (for CI)")
			fs.BoolVar(&o.noConfirm, "no-confirm", false, "do not confirm: let the dead-man roll the host back (to test it); waits for that rollback and exits 4")
			fs.BoolVar(&o.detach, "detach", false, "with --no-confirm: return (exit 0) as soon as the confirmation window is open, printing how to follow the host")
			fs.BoolVar(&o.failOnWarnings, "fail-on-warnings", false, "abort when the configuration has warnings")
			fs.BoolVar(&o.installBoot, "install-bootloader", false, "(re)install the boot loader with the switch (NIXOS_INSTALL_BOOTLOADER=1, as nixos-rebuild --install-bootloader)")
			fs.BoolVar(&o.keepGoing, "keep-going", false, "keep starting hosts after one failed")
			fs.BoolVar(&o.force, "force", false, "deploy even a configuration that stops or removes panther-agent itself")
			fs.IntVar(&o.jobs, "jobs", runtime.NumCPU(), "hosts deployed at once")
			fs.IntVar(&o.canary, "canary", 0, "deploy this many hosts first; the rest only if they were confirmed")
			fs.DurationVar(&o.confirmTimeout, "confirm-timeout", 0, "confirmation window, counted from the end of the health checks after the switch (default: the inventory's, else the agent's 60s)")
			fs.DurationVar(&o.approveTimeout, "approval-timeout", agentv1.DefaultApprovalTimeout, "without --yes: how long the agents wait for your answer after their dry-activate; past it they end the deployment with nothing changed")
			fs.StringVar(&o.critical, "critical-units", "", "comma-separated units that must be active after the switch")
			fs.StringVar(&o.logDir, "log-dir", "logs", "where the controller-side logs go (logs/deploy/<mode>-<host>-<time>.log)")
		},
		run: func(ctx context.Context, args []string) error {
			modes := 0
			for _, b := range []bool{o.dryRun, o.buildOnly, o.boot} {
				if b {
					modes++
				}
			}
			if modes > 1 {
				return exitf(ExitUsage, "--dry-run, --build-only and --boot exclude each other")
			}
			if o.detach && !o.noConfirm {
				return exitf(ExitUsage, "--detach goes with --no-confirm (a detached pantherctl cannot confirm)")
			}
			if o.jobs < 1 {
				return exitf(ExitUsage, "--jobs must be at least 1")
			}
			return c.deploy(ctx, args, o)
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
	if err := nix.CheckSubdir(p.Subdir); err != nil {
		f.Close()
		return nil, archive.Packed{}, exitf(ExitError, "%s: its path inside the git repository cannot go into a flake reference (rename the directory): %v", abs, err)
	}
	return f, p, nil
}

func (c *CLI) openLog(dir, mode, host string) (*os.File, string) {
	base := filepath.Join(dir, "deploy", fmt.Sprintf("%s-%s-%s", mode, host, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		fmt.Fprintf(c.io.Stderr, "warning: no controller log: %v\n", err)
		return nil, ""
	}
	// Never share a file with another run started in the same second.
	for i := 1; ; i++ {
		p := base + ".log"
		if i > 1 {
			p = fmt.Sprintf("%s-%d.log", base, i)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, p
		}
		if !os.IsExist(err) || i > 100 {
			fmt.Fprintf(c.io.Stderr, "warning: no controller log: %v\n", err)
			return nil, ""
		}
	}
}

// selectHosts resolves the command line's hosts against the inventory.
// Plain names need no local nix; @tag and --all read the flake's host list
// with the local nix when there is one, else the inventory's hosts.
func (c *CLI) selectHosts(ctx context.Context, flakeDir string, args []string, all bool) ([]inventory.Host, error) {
	inv, err := inventory.Load(flakeDir)
	if err != nil {
		return nil, exitf(ExitError, "%v", err)
	}
	var flakeHosts []string
	needList := all
	for _, a := range args {
		needList = needList || strings.HasPrefix(a, "@")
	}
	if needList {
		flakeHosts = c.localFlakeHosts(ctx, flakeDir)
	}
	hosts, err := inv.Select(flakeHosts, args, all)
	if err != nil {
		return nil, exitf(ExitUsage, "%v", err)
	}
	return hosts, nil
}

// resolveHost is the tailnet name of one host given by name on the command
// line, through the inventory at flakeDir (its tailnetName), as deploy and
// status resolve it: every command reaches the same agent for a name.
func resolveHost(flakeDir, name string) (string, error) {
	inv, err := inventory.Load(flakeDir)
	if err != nil {
		return "", exitf(ExitError, "%v", err)
	}
	return inv.Host(name).Addr(), nil
}

// hostRun is one host's deployment in a batch.
type hostRun struct {
	host     inventory.Host
	r        *reporter
	logPath  string
	logf     *os.File
	conn     *client.Conn
	summary  *agentv1.Summary
	result   *agentv1.Result
	err      error
	phase    string // where it stopped, for the table
	skipped  bool
	started  time.Time
	duration time.Duration
	pending  *pending // awaiting approval (approve.go)
}

func (h *hostRun) close() {
	if h.conn != nil {
		h.conn.Close()
	}
	if h.logf != nil {
		h.logf.Close()
	}
}

func (h *hostRun) failed() bool {
	if h.awaitsApproval() {
		return false
	}
	return h.skipped || h.err != nil || exitFor(h.result) != ExitOK
}

func (c *CLI) deploy(ctx context.Context, args []string, o *deployOpts) error {
	hosts, err := c.selectHosts(ctx, o.flake, args, o.all)
	if err != nil {
		return err
	}
	s, err := c.signer()
	if err != nil {
		return err
	}
	src, packed, err := c.packSource(ctx, o.flake)
	if err != nil {
		return err
	}
	defer src.Close()
	for _, u := range packed.Untracked {
		fmt.Fprintf(c.io.Stderr, "warning: %s is not tracked by git; nix ignores it (git add it to include it)\n", u)
	}
	n, err := c.connectTailnet(ctx)
	if err != nil {
		return err
	}
	defer n.close()

	runs := make([]*hostRun, len(hosts))
	for i, h := range hosts {
		hr := &hostRun{host: h}
		hr.logf, hr.logPath = c.openLog(o.logDir, o.mode(), h.Name)
		hr.r = &reporter{c: c, host: h.Name, logw: hr.logf}
		runs[i] = hr
		defer hr.close()
	}

	b := &batch{c: c, n: n, s: s, o: o, src: src, packed: packed}
	if o.mode() == "switch" || o.mode() == "boot" {
		if !o.yes {
			if !c.io.IsTerminal() {
				return exitf(ExitUsage, "no terminal to ask whether to switch %s: pass --yes to switch without asking, or --dry-run to look first", hostNames(hosts))
			}
			// One prompt for the whole batch, after every host dry-activated.
			b.each(ctx, runs, func(hr *hostRun) { b.prepareApproval(ctx, hr) }, true)
			var ready []*hostRun
			for _, hr := range runs {
				if hr.err == nil && hr.pending != nil {
					ready = append(ready, hr)
				}
			}
			if len(ready) == 0 {
				return c.finishBatch(runs, o)
			}
			verb := "switch"
			if o.boot {
				verb = "make the boot default on"
			}
			for _, note := range rebootNotes(ready, o.boot) {
				fmt.Fprintln(c.io.Stderr, note)
			}
			if !c.ask(fmt.Sprintf("%s %d host(s) (%s)? [y/N] ", verb, len(ready), hostNames(hostsOf(ready)))) {
				b.declineAll(ctx, ready)
				return exitf(ExitFailed, "not switched (you said no); nothing changed")
			}
			for _, hr := range runs {
				if hr.pending == nil && hr.err == nil && hr.result == nil {
					hr.skipped = true
				}
			}
			// The person saw which hosts failed to dry-activate and agreed
			// to switch the ones named: those failures must not stop them.
			b.stopped = false
		}
	}
	canary := o.canary
	if canary > len(runs) {
		canary = len(runs)
	}
	if canary > 0 {
		b.each(ctx, runs[:canary], func(hr *hostRun) { b.apply(ctx, hr) }, o.keepGoing)
		for _, hr := range runs[:canary] {
			if hr.failed() {
				for _, rest := range runs[canary:] {
					rest.skipped = true
					rest.phase = "canary " + hr.host.Name + " was not confirmed"
				}
				return c.finishBatch(runs, o)
			}
		}
		b.each(ctx, runs[canary:], func(hr *hostRun) { b.apply(ctx, hr) }, o.keepGoing)
	} else {
		b.each(ctx, runs, func(hr *hostRun) { b.apply(ctx, hr) }, o.keepGoing)
	}
	return c.finishBatch(runs, o)
}

// rebootNotes says, before the prompt, which hosts a switch cannot activate
// (they only get the boot default), which need a reboot for a new kernel,
// and which would lose the agent.
func rebootNotes(runs []*hostRun, boot bool) []string {
	var notes []string
	for _, hr := range runs {
		s := hr.summary
		switch {
		case s.GetStopsAgent() != "":
			notes = append(notes, fmt.Sprintf("%s: %s: refused unless --force", hr.host.Name, s.GetStopsAgent()))
		case s.GetNotActivatable() != "" && !boot:
			notes = append(notes, fmt.Sprintf("%s: cannot be activated live (%s): it only becomes the boot default; reboot the host to run it", hr.host.Name, s.GetNotActivatable()))
		case len(s.GetRebootRequired()) > 0 && !boot:
			notes = append(notes, fmt.Sprintf("%s: reboot required afterwards: new %s", hr.host.Name, strings.Join(s.GetRebootRequired(), ", ")))
		}
	}
	return notes
}

func hostsOf(runs []*hostRun) []inventory.Host {
	var hs []inventory.Host
	for _, hr := range runs {
		hs = append(hs, hr.host)
	}
	return hs
}

func hostNames(hs []inventory.Host) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name)
	}
	return strings.Join(s, ", ")
}

// batch runs host deployments with bounded parallelism.
type batch struct {
	c      *CLI
	n      *network
	s      client.Signer
	o      *deployOpts
	src    *os.File
	packed archive.Packed

	mu      sync.Mutex
	stopped bool
}

// each runs f for every run, at most o.jobs at once; after a failure no new
// host starts unless keepGoing.
func (b *batch) each(ctx context.Context, runs []*hostRun, f func(*hostRun), keepGoing bool) {
	if b.c.io.StdoutIsTerminal() && !b.c.g.json {
		lv := newLive(b.c.io.Stdout)
		for _, hr := range runs {
			if !(hr.skipped || hr.err != nil || hr.result != nil) {
				hr.r.live, hr.r.hl = lv, lv.add(hr.host.Name)
			}
		}
		defer func() {
			for _, hr := range runs {
				if hr.r.hl != nil {
					code, what := hostOutcome(hr)
					hr.r.hl.finish(what, code == ExitOK)
				}
			}
			lv.wait()
			for _, hr := range runs {
				hr.r.live, hr.r.hl = nil, nil
			}
		}()
	}
	sem := make(chan struct{}, b.o.jobs)
	var wg sync.WaitGroup
	for _, hr := range runs {
		if hr.skipped || hr.err != nil || hr.result != nil {
			continue
		}
		sem <- struct{}{}
		b.mu.Lock()
		stop := b.stopped && !keepGoing
		b.mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			hr.skipped = true
			hr.phase = "not started after an earlier failure (use --keep-going)"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hr.started = time.Now()
			f(hr)
			hr.duration += time.Since(hr.started)
			if hr.failed() {
				b.mu.Lock()
				b.stopped = true
				b.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// connect dials the host and uploads the source (once per host).
func (b *batch) connect(ctx context.Context, hr *hostRun) error {
	if hr.conn != nil {
		return nil
	}
	conn, err := b.c.dial(ctx, b.n, hr.host.Addr())
	if err != nil {
		return err
	}
	hr.conn = conn
	if hr.r.hl != nil {
		hr.r.hl.setPhase("upload") // the live line only
	}
	t0 := time.Now()
	// Each upload reads the archive from its own section of the file.
	sent, err := conn.Upload(ctx, b.s, b.packed.Digest, newSectionReader(b.src, b.packed.Bytes))
	if err != nil {
		return rpcError(hr.host.Name, err)
	}
	// A refused request (key, peer, replay: refused at the upload or at
	// the request after it) shows the refusal alone, not an upload that
	// seemed to lead somewhere: these lines show with the agent's first event.
	hr.r.lineOnceAccepted("==> upload %s (%d files, %d bytes)", shortDigest(b.packed.Digest), b.packed.Files, b.packed.Bytes)
	if sent == 0 {
		hr.r.lineOnceAccepted("    the agent already has this source; nothing sent")
	} else {
		hr.r.lineOnceAccepted("    upload done in %s (%d bytes)", time.Since(t0).Round(time.Millisecond), sent)
	}
	return nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func (b *batch) intent(hr *hostRun, a agentv1.Action, expected string) *agentv1.Intent {
	in := &agentv1.Intent{
		Action: a, DeploymentId: client.NewDeploymentID(time.Now()), SourceDigest: b.packed.Digest,
		SourceSubdir: b.packed.Subdir, FlakeAttr: hr.host.Name, ExpectedStorePath: expected,
		FailOnWarnings:     b.o.failOnWarnings,
		InstallBootloader:  b.o.installBoot,
		Force:              b.o.force,
		ExtraCriticalUnits: append(append([]string{}, hr.host.CriticalUnits...), splitList(b.o.critical)...),
	}
	if w := b.window(hr); w > 0 {
		in.ConfirmTimeout = durationpb.New(w)
	}
	return in
}

func (b *batch) window(hr *hostRun) time.Duration {
	if b.o.confirmTimeout > 0 {
		return b.o.confirmTimeout
	}
	return hr.host.ConfirmTimeout.Duration
}

// run sends one deploy request and follows it to its result.
func (b *batch) run(ctx context.Context, hr *hostRun, in *agentv1.Intent) {
	st, err := hr.conn.Deploy(ctx, b.s, in)
	if err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	f := &followed{}
	if err := hr.r.follow(st, f); err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	hr.summary, hr.result = f.summary, f.result
	hr.phase = phaseName(f.result.GetFailedPhase())
}

// apply runs the selected mode on one host; after prepare it switches
// exactly the dry-activated store path.
func (b *batch) apply(ctx context.Context, hr *hostRun) {
	if err := b.connect(ctx, hr); err != nil {
		hr.err, hr.phase = err, "upload"
		return
	}
	switch b.o.mode() {
	case "build":
		b.run(ctx, hr, b.intent(hr, agentv1.Action_ACTION_BUILD, ""))
		return
	case "dry-run":
		b.run(ctx, hr, b.intent(hr, agentv1.Action_ACTION_DRY_ACTIVATE, ""))
		return
	}
	if hr.pending != nil {
		b.approveAndFollow(ctx, hr) // approve.go: the same deployment goes on
		return
	}
	action := agentv1.Action_ACTION_SWITCH
	if b.o.boot {
		action = agentv1.Action_ACTION_BOOT
	}
	in := b.intent(hr, action, hr.summary.GetNewStorePath())
	st, err := hr.conn.Deploy(ctx, b.s, in)
	if err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	if b.o.boot {
		f := &followed{}
		if err := hr.r.follow(st, f); err != nil {
			hr.err = rpcError(hr.host.Name, err)
			return
		}
		hr.result, hr.phase = f.result, phaseName(f.result.GetFailedPhase())
		return
	}
	window := b.window(hr)
	if window == 0 {
		window = time.Minute
	}
	hr.result, hr.err = b.c.finishSwitch(ctx, b.n, hr.r, b.s, hr.host.Addr(), in.DeploymentId, st,
		confirmOpts{window: window, noConfirm: b.o.noConfirm, detach: b.o.detach})
	hr.phase = phaseName(hr.result.GetFailedPhase())
}

// finishBatch prints the per-host table and picks the exit code.
func (c *CLI) finishBatch(runs []*hostRun, o *deployOpts) error {
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].host.Name < runs[j].host.Name })
	worst := ExitOK
	rank := map[int]int{ExitOK: 0, ExitRebootRequired: 1, ExitError: 2, ExitRefused: 3, ExitFailed: 4, ExitRolledBack: 5, ExitManual: 6}
	tbl := newTable(column{title: "HOST", max: 24}, column{title: "RESULT", max: 60},
		column{title: "GEN"}, column{title: "TIME"}, column{title: "LOG"})
	for _, hr := range runs {
		code, what := hostOutcome(hr)
		if rank[code] > rank[worst] {
			worst = code
		}
		gen := "-"
		if hr.result.GetGeneration() > 0 {
			gen = fmt.Sprint(hr.result.GetGeneration())
		}
		tbl.add(hr.host.Name, what, gen, hr.duration.Round(100*time.Millisecond).String(), hr.logPath)
		if c.g.json {
			out := map[string]any{"summary": true, "host": hr.host.Name, "result": what, "exitCode": code,
				"log": hr.logPath, "durationMs": hr.duration.Milliseconds()}
			switch {
			case hr.skipped:
				out["outcome"] = "skipped"
			case hr.err != nil || hr.result == nil:
				out["outcome"] = "error"
				out["error"] = what
			default:
				out["outcome"] = outcomeName(hr.result.Outcome)
				out["storePath"] = hr.result.StorePath
				out["generation"] = hr.result.Generation
				out["message"] = hr.result.Message
			}
			writeJSON(c.io.Stdout, out)
		} else if hr.logPath != "" {
			fmt.Fprintf(c.io.Stdout, "%s: full log: %s\n", hr.host.Name, hr.logPath)
		}
	}
	if !c.g.json {
		fmt.Fprintln(c.io.Stdout)
		tbl.write(c.io.Stdout)
	}
	if worst == ExitOK {
		return nil
	}
	if len(runs) == 1 {
		_, what := hostOutcome(runs[0])
		msg := runs[0].host.Name + ": " + what
		if runs[0].logPath != "" {
			msg += " (full log: " + runs[0].logPath + ")"
		}
		return exitf(worst, "%s", msg)
	}
	return exitf(worst, "not every host succeeded (see the table above)")
}

// hostOutcome is one host's exit code and result words for the table.
func hostOutcome(hr *hostRun) (int, string) {
	switch {
	case hr.skipped:
		why := hr.phase
		if why == "" {
			why = "not switched"
		}
		return ExitFailed, "skipped: " + why
	case hr.err != nil:
		code := ExitError
		if ee, ok := hr.err.(*exitError); ok {
			code = ee.code
		}
		return code, "error: " + hr.err.Error()
	case hr.awaitsApproval():
		return ExitOK, "dry-activated, awaiting approval"
	case hr.result == nil:
		return ExitError, "no result"
	}
	res := hr.result
	code := exitFor(res)
	what := outcomeName(res.Outcome)
	switch res.Outcome {
	case agentv1.Outcome_OUTCOME_FAILED:
		what = "failed in " + phaseName(res.FailedPhase)
	case agentv1.Outcome_OUTCOME_ROLLED_BACK:
		what = "rolled back (" + res.Message + ")"
		if hr.r != nil && hr.r.unreached != "" {
			what = unreachedLine(res.Message, hr.r.unreached)
		}
	case agentv1.Outcome_OUTCOME_MANUAL_INTERVENTION:
		what = "MANUAL INTERVENTION: " + res.Message
	case agentv1.Outcome_OUTCOME_REBOOT_REQUIRED:
		what = "boot default set, NOT activated: reboot required"
	}
	if res.Message != "" && res.Outcome == agentv1.Outcome_OUTCOME_FAILED {
		what += ": " + res.Message
	}
	return code, what
}

func (c *CLI) ask(q string) bool {
	fmt.Fprint(c.io.Stderr, q)
	line, _ := bufio.NewReader(c.io.Stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
