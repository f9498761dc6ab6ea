package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/inputs"
	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/defaults"
	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/tailnet"
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
	batch          string
	maxUnhealthy   int
	pause          time.Duration
	waves          rollout.Waves
	confirmTimeout time.Duration
	approveTimeout time.Duration // how long the agents hold a prompted deployment for your answer
	inputs         string        // --inputs ship|fetch (inputs.go)
	buildOn        string        // buildonce.go
	pushTo         string        // buildonce.go
	cacheKey       string        // buildonce.go
	cachePeerTag   string        // buildonce.go
	critical       string
	logDir         string
	diff           string // --diff: none, summary or full (fleetdiff.go)
}

func (c *CLI) deployCmd() *command {
	o := &deployOpts{}
	return &command{
		name: "deploy", usage: "deploy <host|@tag>... | --all [--dry-run | --build-only | --boot] [--yes] [--force] [--jobs N] [--canary N] [--batch N|P%] [--max-unhealthy K] [--pause D]",
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
they were confirmed. --batch N (or a share, 25%) then switches the hosts in waves of that
size, one wave after the other (--pause D between them); a wave with more than
--max-unhealthy hosts that did not succeed halts the rollout: the hosts after it are not
touched and are reported as skipped. The canary is a first wave that halts on any failure.
Tags and per-host settings come from panther.json at the flake root.`,
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
			fs.StringVar(&o.batch, "batch", "", "switch the hosts in waves of N hosts, or of a share of them (25%) (default: one wave)")
			fs.IntVar(&o.maxUnhealthy, "max-unhealthy", 0, "hosts of a wave that may fail before the rollout halts (the rest skipped)")
			fs.DurationVar(&o.pause, "pause", 0, "wait between waves")
			fs.DurationVar(&o.confirmTimeout, "confirm-timeout", 0, fmt.Sprintf("confirmation window, counted from the end of the health checks after the switch (default: the inventory's, else the agent's, %v unless its confirmTimeout says otherwise)", defaults.ConfirmTimeout))
			fs.DurationVar(&o.approveTimeout, "approval-timeout", defaults.ApprovalTimeout, "without --yes: how long the agents wait for your answer after their dry-activate; past it they end the deployment with nothing changed")
			fs.StringVar(&o.inputs, "inputs", inputs.Ship, inputsFlagUsage)
			buildOnceFlags(fs, o)
			fs.StringVar(&o.critical, "critical-units", "", "comma-separated units that must be active after the switch")
			fs.StringVar(&o.diff, "diff", diffSummary, "before the prompt, show the change across the batch: none, summary, or full (with each host's)")
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
			if !validDiff(o.diff) {
				return exitf(ExitUsage, "--diff must be none, summary or full")
			}
			if o.jobs < 1 {
				return exitf(ExitUsage, "--jobs must be at least 1")
			}
			w, err := rollout.ParseBatch(o.batch)
			if err != nil {
				return exitf(ExitUsage, "%v", err)
			}
			if o.maxUnhealthy < 0 || o.pause < 0 || o.canary < 0 {
				return exitf(ExitUsage, "--canary, --max-unhealthy and --pause cannot be negative")
			}
			w.MaxUnhealthy, w.Pause = o.maxUnhealthy, o.pause
			o.waves = w
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

// resolveHost is one host given by name on the command line, reached at
// its tailnet name from the inventory at flakeDir (its tailnetName), as
// deploy and status resolve it: every command reaches the same agent for a
// name.
func resolveHost(flakeDir, name string) (rollout.Host, error) {
	inv, err := inventory.Load(flakeDir)
	if err != nil {
		return rollout.Host{}, exitf(ExitError, "%v", err)
	}
	return rollout.Host{Name: name, Addr: inv.Host(name).Addr()}, nil
}

// fleet is how the CLI reaches agents: the client's rollout.Agent over
// the network n, signing with s, confirming from a new tailnet node.
func (c *CLI) fleet(n *network, s client.Signer) *client.Fleet {
	f := &client.Fleet{Dialer: n.dialer, Port: c.g.port, Signer: s, Log: c.log}
	if c.g.via == "tsnet" && c.io.Dialer == nil {
		f.ConfirmVia = func(rollout.Host) client.ConfirmDialer { return confirmNode{c.newFreshNode()} }
	}
	return f
}

// confirmNode adapts freshNode to client.ConfirmDialer.
type confirmNode struct{ f *freshNode }

func (n confirmNode) Start() { n.f.start() }
func (n confirmNode) Wait(ctx context.Context) (tailnet.Dialer, time.Duration, error) {
	node, up, err := n.f.wait(ctx)
	if err != nil {
		return nil, up, err
	}
	return node, up, nil
}
func (n confirmNode) Close() { n.f.close() }

// rolloutHost is the core's view of an inventory host.
func rolloutHost(h inventory.Host) rollout.Host {
	return rollout.Host{Name: h.Name, Addr: h.Addr(), CriticalUnits: h.CriticalUnits, ConfirmTimeout: h.ConfirmTimeout.Duration}
}

// hostLog is one host's controller-side log file.
type hostLog struct {
	f    *os.File
	path string
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
	if (o.mode() == "switch" || o.mode() == "boot") && !o.yes && !c.io.IsTerminal() {
		return exitf(ExitUsage, "no terminal to ask whether to switch %s: pass --yes to switch without asking, or --dry-run to look first", hostNames(hosts))
	}
	src, packed, err := c.packSource(ctx, o.flake)
	if err != nil {
		return err
	}
	defer src.Close()
	inp, err := c.prepareInputs(ctx, o.flake, o.inputs)
	if err != nil {
		return err
	}
	defer inp.Close()
	for _, u := range packed.Untracked {
		fmt.Fprintf(c.io.Stderr, "warning: %s is not tracked by git; nix ignores it (git add it to include it)\n", u)
	}
	n, err := c.connectTailnet(ctx)
	if err != nil {
		return err
	}
	defer n.close()

	plan, hosts, err := planBuilds(o, hosts)
	if err != nil {
		return exitf(ExitUsage, "%v", err)
	}
	if plan.Local {
		stop, err := c.buildLocal(ctx, o, n, hosts, &plan) // buildlocal.go
		if err != nil {
			return err
		}
		defer stop()
	}
	rd := newRenderer(c, true)
	logs := map[string]hostLog{}
	var targets []rollout.Host
	for _, h := range hosts {
		f, path := c.openLog(o.logDir, o.mode(), h.Name)
		if f != nil {
			defer f.Close()
			rd.add(h.Name, f)
		} else {
			rd.add(h.Name, nil)
		}
		logs[h.Name] = hostLog{f: f, path: path}
		targets = append(targets, rolloutHost(h))
	}
	fl := c.fleet(n, s)
	defer fl.Close()
	upload := &client.Upload{Fleet: fl, Digest: packed.Digest, Subdir: packed.Subdir, Files: packed.Files, Bytes: packed.Bytes,
		Open: func() io.Reader { return newSectionReader(src, packed.Bytes) }}
	withInputs(fl, upload, inp)
	ro := o.rolloutOptions()
	withBuildPlan(&ro, plan, o.pushTo)
	if (o.mode() == "switch" || o.mode() == "boot") && !o.yes {
		ro.Approver = rollout.ApproverFunc(func(ready, _ []*rollout.HostReport) (bool, error) {
			return c.approve(ready, o.boot, o.diff), nil
		})
		// One deployment per host: the agents hold it after their dry
		// activation until the answer.
		ro.HoldForApproval, ro.ApprovalTimeout = true, o.approveTimeout
	}
	rep, err := rollout.New(fl, upload, rd, ro, c.log).Run(ctx, targets)
	if err != nil {
		return err
	}
	if rep.Declined {
		return exitf(ExitFailed, "not switched (you said no); nothing changed")
	}
	return c.finishBatch(rep, logs)
}

// rolloutOptions are the core's options from the command line.
func (o *deployOpts) rolloutOptions() rollout.Options {
	return rollout.Options{
		Mode: rollout.Mode(o.mode()), NoConfirm: o.noConfirm, Detach: o.detach,
		FailOnWarnings: o.failOnWarnings, InstallBootloader: o.installBoot, Force: o.force,
		CriticalUnits: splitList(o.critical), ConfirmTimeout: o.confirmTimeout,
		Jobs: o.jobs, KeepGoing: o.keepGoing, Canary: o.canary, Waves: o.waves,
	}
}

// approve asks once, for the whole batch, after every host dry-activated.
func (c *CLI) approve(ready []*rollout.HostReport, boot bool, diff string) bool {
	verb := "switch"
	if boot {
		verb = "make the boot default on"
	}
	for _, note := range rebootNotes(ready, boot) {
		fmt.Fprintln(c.io.Stderr, note)
	}
	c.showFleetDiff(ready, diff)
	var names []string
	for _, hr := range ready {
		names = append(names, hr.Host.Name)
	}
	return c.ask(fmt.Sprintf("%s %d host(s) (%s)? [y/N] ", verb, len(ready), strings.Join(names, ", ")))
}

// rebootNotes says, before the prompt, which hosts a switch cannot activate
// (they only get the boot default), which need a reboot for a new kernel,
// and which would lose the agent.
func rebootNotes(ready []*rollout.HostReport, boot bool) []string {
	var notes []string
	for _, hr := range ready {
		s := hr.Summary
		if s == nil {
			continue
		}
		switch {
		case s.StopsAgent != "":
			notes = append(notes, fmt.Sprintf("%s: %s: refused unless --force", hr.Host.Name, s.StopsAgent))
		case s.NotActivatable != "" && !boot:
			notes = append(notes, fmt.Sprintf("%s: cannot be activated live (%s): it only becomes the boot default; reboot the host to run it", hr.Host.Name, s.NotActivatable))
		case len(s.RebootRequired) > 0 && !boot:
			notes = append(notes, fmt.Sprintf("%s: reboot required afterwards: new %s", hr.Host.Name, strings.Join(s.RebootRequired, ", ")))
		}
	}
	return notes
}

func hostNames(hs []inventory.Host) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name)
	}
	return strings.Join(s, ", ")
}

// exitCodes maps the core's verdicts to pantherctl's exit codes, and
// verdictRank orders them: the worst host's is the run's.
var exitCodes = map[rollout.Verdict]int{
	rollout.VerdictOK: ExitOK, rollout.VerdictRebootRequired: ExitRebootRequired, rollout.VerdictError: ExitError,
	rollout.VerdictRefused: ExitRefused, rollout.VerdictFailed: ExitFailed, rollout.VerdictRolledBack: ExitRolledBack,
	rollout.VerdictManual: ExitManual,
}

// finishBatch prints the per-host table and picks the exit code.
func (c *CLI) finishBatch(rep *rollout.Report, logs map[string]hostLog) error {
	hrs := append([]*rollout.HostReport(nil), rep.Hosts...)
	sort.SliceStable(hrs, func(i, j int) bool { return hrs[i].Host.Name < hrs[j].Host.Name })
	worst, worstVerdict := ExitOK, rollout.VerdictOK
	waves := false
	for _, hr := range hrs {
		waves = waves || hr.Wave > 1
	}
	cols := []column{{title: "HOST", max: 24}, {title: "RESULT", max: 60}, {title: "GEN"}, {title: "TIME"}}
	if waves {
		cols = append(cols, column{title: "WAVE"})
	}
	tbl := newTable(append(cols, column{title: "LOG"})...)
	for _, hr := range hrs {
		code, what := hostOutcome(hr)
		if v := hr.Verdict(); v > worstVerdict {
			worst, worstVerdict = code, v
		}
		gen := "-"
		if hr.Result != nil && hr.Result.Generation > 0 {
			gen = fmt.Sprint(hr.Result.Generation)
		}
		logPath := logs[hr.Host.Name].path
		row := []string{hr.Host.Name, what, gen, hr.Duration.Round(100 * time.Millisecond).String()}
		if waves {
			row = append(row, waveCell(hr.Wave))
		}
		tbl.add(append(row, logPath)...)
		if c.g.json {
			out := map[string]any{"summary": true, "host": hr.Host.Name, "result": what, "exitCode": code,
				"log": logPath, "durationMs": hr.Duration.Milliseconds()}
			if hr.Wave > 0 {
				out["wave"] = hr.Wave // skipped hosts say why in "result"
			}
			switch {
			case hr.Skipped:
				out["outcome"] = "skipped"
			case hr.Err != nil || hr.Result == nil:
				out["outcome"] = "error"
				out["error"] = what
			default:
				out["outcome"] = hr.Result.Outcome.String()
				out["storePath"] = hr.Result.StorePath
				out["generation"] = hr.Result.Generation
				out["message"] = hr.Result.Message
			}
			writeJSON(c.io.Stdout, out)
		} else if logPath != "" {
			fmt.Fprintf(c.io.Stdout, "%s: full log: %s\n", hr.Host.Name, logPath)
		}
	}
	if !c.g.json {
		fmt.Fprintln(c.io.Stdout)
		tbl.write(c.io.Stdout)
		if h := rep.Halt; h != nil && !h.Canary {
			fmt.Fprintf(c.io.Stdout, "\nhalted after wave %d: %d unhealthy host(s) (%s), more than --max-unhealthy %d; the hosts after it were not touched\n",
				h.Wave, len(h.Unhealthy), strings.Join(h.Unhealthy, ", "), h.Max)
		}
	}
	if worst == ExitOK {
		return nil
	}
	if len(hrs) == 1 {
		_, what := hostOutcome(hrs[0])
		msg := hrs[0].Host.Name + ": " + what
		if p := logs[hrs[0].Host.Name].path; p != "" {
			msg += " (full log: " + p + ")"
		}
		return exitf(worst, "%s", msg)
	}
	return exitf(worst, "not every host succeeded (see the table above)")
}

func waveCell(w int) string {
	if w == 0 {
		return "-"
	}
	return fmt.Sprint(w)
}

// hostOutcome is one host's exit code and result words for the table.
func hostOutcome(hr *rollout.HostReport) (int, string) {
	code := exitCodes[hr.Verdict()]
	switch {
	case hr.Skipped:
		why := hr.Why
		if why == "" {
			why = "not switched"
		}
		return code, "skipped: " + why
	case hr.Err != nil:
		ee := agentExit(hr.Host.Name, hr.Err).(*exitError)
		return ee.code, "error: " + ee.msg
	case hr.AwaitingApproval():
		return ExitOK, "dry-activated, awaiting approval"
	case hr.Result == nil:
		return ExitError, "no result"
	}
	res := hr.Result
	what := res.Outcome.String()
	switch res.Outcome {
	case rollout.OutcomeFailed:
		what = "failed in " + res.FailedPhase.String()
	case rollout.OutcomeRolledBack:
		what = "rolled back (" + res.Message + ")"
		if hr.Unreached != "" {
			what = unreachedLine(res.Message, hr.Unreached)
		}
	case rollout.OutcomeManualIntervention:
		what = "MANUAL INTERVENTION: " + res.Message
	case rollout.OutcomeRebootRequired:
		what = "boot default set, NOT activated: reboot required"
	}
	if res.Message != "" && res.Outcome == rollout.OutcomeFailed {
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
