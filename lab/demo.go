package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	// Lab configures the lab the demo boots. Lab.Dir default: a new
	// directory under the OS temp dir. It is removed afterwards unless Keep.
	Lab Options
	// Keep leaves the lab directory in place after the demo. Default false.
	Keep bool
	// DeadmanWindow is the confirmation window of the deploy that cuts the
	// network: how long the host stays cut off before its agent rolls
	// back. Default 20s.
	DeadmanWindow time.Duration
	// Out receives the walk-through. Default os.Stdout.
	Out io.Writer
}

// StepResult is what one step of the demo did.
type StepResult struct {
	// Name is the step's short name, Title its headline.
	Name, Title string
	// Command is the pantherctl command line run ("" for none).
	Command string
	// WantCode and GotCode are pantherctl's expected and actual exit codes.
	WantCode, GotCode int
	// OK is true when the exit code and the resulting state were as shown.
	OK bool
	// Skipped is true when the step did not run (Note says why); it counts
	// as OK.
	Skipped bool
	// Note is a one-line finding: what was checked, or what went wrong.
	Note string
	// Elapsed is how long the step took.
	Elapsed time.Duration
}

// Summary is the outcome of a demo.
type Summary struct {
	// Boot is how long the lab took to start.
	Boot time.Duration
	// Steps are the steps in order.
	Steps []StepResult
	// Total is the demo's whole run time.
	Total time.Duration
}

// OK reports whether every step behaved as shown.
func (s *Summary) OK() bool {
	for _, st := range s.Steps {
		if !st.OK {
			return false
		}
	}
	return len(s.Steps) > 0
}

// step is one command of the walk-through and what must follow from it.
type step struct {
	name  string // short, for the summary
	title string
	why   string
	// before runs first (e.g. an edit of the flake); it prints what it does.
	before func(ctx context.Context) error
	args   []string
	want   int
	// skip, when it returns a reason, skips the step.
	skip func(ctx context.Context) string
	// check inspects pantherctl's output and the hosts afterwards; it
	// returns a note on success.
	check func(ctx context.Context, r ctlResult) (string, error)
}

// ctlResult is one pantherctl run.
type ctlResult struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

// Demo boots a lab, walks through build-all, a dry-run, a confirmed deploy,
// a change, a deploy that cuts a host's network and is rolled back by the
// dead-man switch, rollback --list, rollback --rollback and status, printing
// what happens and why, and stops the lab. It returns the summary; an error
// means the lab itself could not run (the summary is then partial).
func Demo(ctx context.Context, opts DemoOptions) (*Summary, error) {
	begin := time.Now()
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.DeadmanWindow <= 0 {
		opts.DeadmanWindow = 20 * time.Second
	}
	removeDir := !opts.Keep
	if opts.Lab.Dir == "" {
		d, err := os.MkdirTemp("", "panther-lab-demo-")
		if err != nil {
			return nil, err
		}
		opts.Lab.Dir = d
	}
	w := opts.Out
	sum := &Summary{}
	fmt.Fprintf(w, "panther lab demo: the whole flow on this machine\n\n")
	fmt.Fprintf(w, "Booting the lab in %s ...\n", opts.Lab.Dir)
	l, err := Start(ctx, opts.Lab)
	if err != nil {
		if removeDir {
			_ = Remove(opts.Lab.Dir)
		}
		return sum, err
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(w, "warning: stopping the lab: %v\n", err)
		}
		if removeDir {
			if err := Remove(l.Dir); err != nil {
				fmt.Fprintf(w, "warning: removing the lab: %v\n", err)
			}
		} else {
			fmt.Fprintf(w, "The lab directory stays: %s\n", l.Dir)
		}
	}()
	sum.Boot = time.Since(begin)
	d := &demo{lab: l, out: w, window: opts.DeadmanWindow}
	d.intro(sum.Boot)

	steps := d.steps()
	for i, s := range steps {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		sum.Steps = append(sum.Steps, d.run(ctx, i+1, len(steps), s))
	}
	sum.Total = time.Since(begin)
	d.summary(sum)
	return sum, nil
}

// demo runs the steps against one lab.
type demo struct {
	lab    *Lab
	out    io.Writer
	window time.Duration

	// What earlier steps established, for later checks.
	good map[string]string // host -> store path after the first deploy
	v2   string            // alpha's store path after the change
}

// star is the host the single-host steps use.
const star = "alpha"

func (d *demo) intro(boot time.Duration) {
	l := d.lab
	w := d.out
	fmt.Fprintf(w, "  tailnet  control %s with DERP and STUN, all inside this process\n", l.Net.ControlURL)
	for _, h := range l.Hosts {
		fmt.Fprintf(w, "  host     %-6s %-15s systemd in its own namespaces (network too), running panther-agent\n", h.Name, h.SB.IP())
	}
	fmt.Fprintf(w, "  flake    flake/ (a copy of examples/lab: every host runs variant %q)\n", VariantGood)
	fmt.Fprintf(w, "  key      operator.key, the signing key every agent trusts\n")
	fmt.Fprintf(w, "  ready in %v\n", boot.Round(100*time.Millisecond))
	fmt.Fprintf(w, "\nEach step runs the real pantherctl (working directory %s) with:\n  %s\n", l.Dir, l.ExportLine())
}

func (d *demo) steps() []step {
	l := d.lab
	hosts := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		hosts[i] = h.Name
	}
	var before map[string]string // states before the dry-run
	return []step{
		{
			name:  "build-all",
			title: "build-all: build every host's configuration here, as CI would",
			why: "Evaluates and builds nixosConfigurations.<host>.config.system.build.toplevel for the " +
				"whole fleet with this machine's nix. No agent is involved: a configuration that does not " +
				"evaluate or build fails here, before any host is touched.",
			args: []string{"build-all", "--flake", "flake"},
			skip: func(ctx context.Context) string {
				r := d.ctl(ctx, io.Discard, "build-all", "--help")
				if r.Code != 0 && strings.Contains(r.Stderr, "unknown command") {
					return "this pantherctl has no build-all command yet"
				}
				return ""
			},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				for _, h := range hosts {
					if _, err := os.Stat(filepath.Join(l.Dir, "logs", "build", h+".log")); err != nil {
						return "", fmt.Errorf("no build log for %s: %w", h, err)
					}
				}
				return "built " + strings.Join(hosts, ", ") + "; logs in logs/build/", nil
			},
		},
		{
			name:  "deploy --all --dry-run",
			title: "deploy --dry-run: what would change on every host",
			why: "pantherctl uploads the flake to each agent, which builds its own configuration and " +
				"dry-activates it; pantherctl shows the new system and the units that would start. " +
				"Nothing is switched: every host stays as it was.",
			before: func(ctx context.Context) error {
				before = d.states(ctx)
				return nil
			},
			args: []string{"deploy", "--all", "--dry-run", "--flake", "flake"},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				after := d.states(ctx)
				for _, h := range hosts {
					if after[h] != before[h] {
						return "", fmt.Errorf("%s changed:\nbefore %s\nafter  %s", h, before[h], after[h])
					}
				}
				return "no host changed: no running system, no generation", nil
			},
		},
		{
			name:  "deploy --all",
			title: "deploy: switch every host, then confirm",
			why: "Each agent builds, dry-activates, writes a journal record with a deadline to disk, " +
				"switches (in a transient systemd unit, so the switch survives an agent restart), checks " +
				"health over systemd D-Bus and waits. pantherctl confirms from a brand-new tailnet node: " +
				"proof that the new system still lets in a node it has never seen. Confirmed, the new " +
				"system becomes the boot default and a generation of the system profile.",
			args: []string{"deploy", "--all", "--yes", "--flake", "flake"},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				d.good = map[string]string{}
				for _, h := range l.Hosts {
					if !strings.Contains(r.Stdout, h.Name+": result: confirmed") {
						return "", fmt.Errorf("no confirmation for %s in the output", h.Name)
					}
					if v := h.Variant(ctx); v != VariantGood {
						return "", fmt.Errorf("%s runs variant %q, want %q", h.Name, v, VariantGood)
					}
					if s := h.UnitProperty(ctx, "lab-hello.service", "ActiveState"); s != "active" {
						return "", fmt.Errorf("%s: lab-hello.service is %q, want active", h.Name, s)
					}
					d.good[h.Name] = h.CurrentSystem(ctx)
				}
				return "every host confirmed, runs " + VariantGood + ", lab-hello.service active", nil
			},
		},
		{
			name:  "deploy " + star + " (a change)",
			title: "deploy " + star + ": a change, confirmed",
			why: "The operator changes " + star + "'s configuration (here: its lab-hello unit). The " +
				"dry-activation says lab-hello.service will be restarted; the switch restarts it; " +
				"pantherctl confirms. The other hosts are not touched.",
			before: func(ctx context.Context) error {
				fmt.Fprintf(d.out, "  edit flake/hosts.json: %s → %q\n", star, VariantV2)
				return l.SetVariant(star, VariantV2)
			},
			args: []string{"deploy", star, "--yes", "--flake", "flake"},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				h := l.Host(star)
				if v := h.Variant(ctx); v != VariantV2 {
					return "", fmt.Errorf("%s runs variant %q, want %q", star, v, VariantV2)
				}
				if env := h.UnitProperty(ctx, "lab-hello.service", "Environment"); !strings.Contains(env, "LAB_HELLO_VERSION=2") {
					return "", fmt.Errorf("%s: lab-hello.service runs with %q, want LAB_HELLO_VERSION=2", star, env)
				}
				for _, o := range l.Hosts {
					if o.Name != star && o.CurrentSystem(ctx) != d.good[o.Name] {
						return "", fmt.Errorf("%s changed too", o.Name)
					}
				}
				d.v2 = h.CurrentSystem(ctx)
				return star + " runs " + VariantV2 + " with the new lab-hello; the others are unchanged", nil
			},
		},
		{
			name:  "rollback " + star + " --list",
			title: "rollback --list: " + star + "'s generations and what happened to each",
			why: "The agent lists the system profile's generations with the deployment that made " +
				"each one and its result; * marks the running one.",
			args: []string{"rollback", star, "--list"},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				rows := generationRows(r.Stdout)
				if len(rows) < 2 {
					return "", fmt.Errorf("%d generations listed, want at least 2", len(rows))
				}
				cur := ""
				for _, row := range rows {
					if row.current {
						cur = row.storePath
					}
				}
				if cur != d.v2 {
					return "", fmt.Errorf("current generation %q, want %s", cur, d.v2)
				}
				return fmt.Sprintf("%d generations; the running one is %s", len(rows), VariantV2), nil
			},
		},
		{
			name:  "rollback " + star + " --rollback 1",
			title: "rollback --rollback 1: back to the first generation, dead-man protected",
			why: "A rollback is a switch like any other: " + star + " goes back to generation 1 " +
				"(" + VariantGood + ") and pantherctl confirms it in time, or the agent returns to " +
				"where it was. The flake is not changed.",
			args: []string{"rollback", star, "--rollback", "1", "--yes"},
			check: func(ctx context.Context, r ctlResult) (string, error) {
				h := l.Host(star)
				if cur := h.CurrentSystem(ctx); cur != d.good[star] {
					return "", fmt.Errorf("%s runs %s, want generation 1 %s", star, cur, d.good[star])
				}
				return star + " runs " + VariantGood + " again", nil
			},
		},
		{
			name:  "deploy " + star + " (cuts the network)",
			title: "deploy " + star + ": a configuration that cuts the host's network, rolled back by the dead-man switch",
			why: fmt.Sprintf("This configuration's activation takes every link of %s down, like a firewall "+
				"change that locks you out. The switch itself succeeds, but pantherctl can no longer reach "+
				"%s to confirm. The agent wrote the deadline to disk before switching; when the %v window "+
				"closes unconfirmed, the dead-man — the agent's timer and, independent of the agent, a "+
				"systemd timer armed before the switch — re-activates the recorded previous system (%s), "+
				"whose activation brings the links back. The boot default never left it: a reboot in the "+
				"window would have brought it back too. pantherctl then reports the rollback and exits with code 4.",
				star, star, d.window, VariantGood),
			before: func(ctx context.Context) error {
				fmt.Fprintf(d.out, "  edit flake/hosts.json: %s → %q\n", star, VariantCutNetwork)
				return l.SetVariant(star, VariantCutNetwork)
			},
			args: []string{"deploy", star, "--yes", "--confirm-timeout", d.window.String(), "--flake", "flake"},
			want: 4,
			check: func(ctx context.Context, r ctlResult) (string, error) {
				h := l.Host(star)
				if cur := h.CurrentSystem(ctx); cur != d.good[star] {
					return "", fmt.Errorf("%s runs %s, want the previous system %s", star, cur, d.good[star])
				}
				if !h.LinkUp(ctx) {
					return "", fmt.Errorf("%s's network link is still down", star)
				}
				if !strings.Contains(r.Stdout, "rolled back") {
					return "", errors.New("the output does not say the host rolled back")
				}
				return fmt.Sprintf("%s is back on %s with its network up, %v after the switch began", star, VariantGood, r.Elapsed.Round(time.Second)), nil
			},
		},
		{
			name:  "status",
			title: "status: the fleet at a glance",
			why: "One row per host, asked in parallel: agent version, running system, generation, " +
				"systemd state and any deployment waiting for confirmation.",
			args: append([]string{"status"}, hosts...),
			check: func(ctx context.Context, r ctlResult) (string, error) {
				for _, h := range hosts {
					if !strings.Contains(r.Stdout, h) {
						return "", fmt.Errorf("no row for %s", h)
					}
				}
				return "every host answered", nil
			},
		},
	}
}

// states returns every host's State.
func (d *demo) states(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, h := range d.lab.Hosts {
		out[h.Name] = h.State(ctx)
	}
	return out
}

// run runs one step: prints it, runs pantherctl, checks the result.
func (d *demo) run(ctx context.Context, n, total int, s step) StepResult {
	w := d.out
	begin := time.Now()
	res := StepResult{Name: s.name, Title: s.title, WantCode: s.want}
	fmt.Fprintf(w, "\n[%d/%d] %s\n", n, total, s.title)
	fmt.Fprint(w, wrap(s.why, "      ", 92))
	res.Command = "pantherctl " + strings.Join(s.args, " ")
	if s.skip != nil {
		if reason := s.skip(ctx); reason != "" {
			res.OK, res.Skipped, res.Note = true, true, "skipped: "+reason
			fmt.Fprintf(w, "  - %s\n", res.Note)
			res.Elapsed = time.Since(begin)
			return res
		}
	}
	if s.before != nil {
		if err := s.before(ctx); err != nil {
			res.Note = err.Error()
			fmt.Fprintf(w, "  ✗ %s\n", res.Note)
			res.Elapsed = time.Since(begin)
			return res
		}
	}
	fmt.Fprintf(w, "  $ %s\n", res.Command)
	r := d.ctl(ctx, &prefixWriter{w: w, prefix: "  │ "}, s.args...)
	res.GotCode = r.Code
	switch {
	case r.Code != s.want:
		res.Note = fmt.Sprintf("exit %d, want %d", r.Code, s.want)
		if tail := strings.TrimSpace(r.Stderr); tail != "" {
			res.Note += ": " + lastLine(tail)
		}
	case s.check != nil:
		note, err := s.check(ctx, r)
		if err != nil {
			res.Note = err.Error()
		} else {
			res.OK, res.Note = true, note
		}
	default:
		res.OK = true
	}
	res.Elapsed = time.Since(begin)
	mark := "✓"
	if !res.OK {
		mark = "✗"
	}
	fmt.Fprintf(w, "  %s exit %d (want %d) in %v: %s\n", mark, r.Code, s.want, r.Elapsed.Round(100*time.Millisecond), res.Note)
	return res
}

// ctl runs pantherctl in the lab directory with the lab's environment; its
// output goes to show as it comes and is returned.
func (d *demo) ctl(ctx context.Context, show io.Writer, args ...string) ctlResult {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.lab.Ctl, args...)
	cmd.Dir = d.lab.Dir
	cmd.Env = append(cleanEnv(os.Environ()), d.lab.Env()...)
	cmd.Env = append(cmd.Env, "TS_NO_LOGS_NO_SUPPORT=true")
	var out, errb bytes.Buffer
	var mu sync.Mutex // stdout and stderr are copied by two goroutines
	cmd.Stdout = io.MultiWriter(&out, &lockedWriter{mu: &mu, w: show})
	cmd.Stderr = io.MultiWriter(&errb, &lockedWriter{mu: &mu, w: show})
	begin := time.Now()
	err := cmd.Run()
	r := ctlResult{Stdout: out.String(), Stderr: errb.String(), Elapsed: time.Since(begin)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		r.Code = -1
		r.Stderr += "\n" + err.Error()
	}
	if pw, ok := show.(*prefixWriter); ok {
		pw.Flush()
	}
	return r
}

// cleanEnv drops the variables the lab sets, so a caller's own pantherctl
// settings do not leak into the demo.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "PANTHER_") || strings.HasPrefix(kv, "NIX_CONFIG=") || strings.HasPrefix(kv, "NIX_USER_CONF_FILES=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (d *demo) summary(sum *Summary) {
	w := d.out
	fmt.Fprintf(w, "\nSummary (lab booted in %v)\n", sum.Boot.Round(100*time.Millisecond))
	failed := 0
	for i, s := range sum.Steps {
		mark := "✓"
		switch {
		case s.Skipped:
			mark = "-"
		case !s.OK:
			mark = "✗"
			failed++
		}
		code := fmt.Sprintf("exit %d", s.GotCode)
		if s.Skipped {
			code = "skipped"
		}
		fmt.Fprintf(w, "  %s %d. %-32s %-8s %5.1fs  %s\n", mark, i+1, s.Name, code, s.Elapsed.Seconds(), s.Note)
	}
	if failed == 0 {
		fmt.Fprintf(w, "All %d steps behaved as shown, in %v.\n", len(sum.Steps), sum.Total.Round(time.Second))
	} else {
		fmt.Fprintf(w, "%d of %d steps did not behave as shown (total %v).\n", failed, len(sum.Steps), sum.Total.Round(time.Second))
	}
}

// genRow is one row of `pantherctl rollback --list`.
type genRow struct {
	number    string
	current   bool
	storePath string
}

// generationRows parses the table of `pantherctl rollback --list`: rows
// start with the generation number, end with the store path and carry a *
// when current.
func generationRows(out string) []genRow {
	var rows []genRow
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.Trim(f[0], "0123456789") != "" {
			continue
		}
		row := genRow{number: f[0], storePath: f[len(f)-1]}
		for _, x := range f[1 : len(f)-1] {
			if x == "*" {
				row.current = true
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// wrap word-wraps text to width, each line indented.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		b.WriteString(line + "\n")
	}
	return b.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes a last line without a newline.
func (p *prefixWriter) Flush() {
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
