// Package preflight runs the pre-deployment checklist: the flake evaluates,
// every selected host is one of its nixosConfigurations, each host's agent
// answers over the tailnet (with its round-trip time), the flake's git tree
// has no uncommitted changes, and each host's config.warnings. It produces a
// table of checks; talking to nix, git and the agents is the caller's, behind
// small interfaces.
package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/controller/inventory"
	"github.com/pantheros/panther/controller/termsafe"
)

// ErrNotGit: the flake directory is not inside a git work tree.
var ErrNotGit = errors.New("not a git work tree")

// Status is how a check ended.
type Status string

// Statuses of a Check. Only Fail makes the checklist fail.
const (
	OK   Status = "ok"
	Warn Status = "WARN" // worth reading, but not a reason to stop
	Fail Status = "FAIL"
	Skip Status = "skip" // could not run because an earlier check failed
)

// Names of the checks, in table order.
const (
	CheckFlake     = "flake evaluates"
	CheckGit       = "git tree clean"
	CheckSelect    = "hosts selected"
	CheckInFlake   = "in flake"
	CheckReachable = "agent reachable"
	CheckWarnings  = "config.warnings"
	CheckLock      = "flake.lock complete"
)

// Check is one row of the checklist.
type Check struct {
	Name   string   `json:"check"`
	Host   string   `json:"host,omitempty"` // "" for checks of the whole flake
	Status Status   `json:"status"`
	Detail string   `json:"detail,omitempty"`
	Items  []string `json:"items,omitempty"` // e.g. the uncommitted files, the warnings
	// RTT is the agent's Status round trip (CheckReachable only).
	RTT time.Duration `json:"-"`
}

// Evaluator evaluates the flake (*nix.Nix is one).
type Evaluator interface {
	Hosts(ctx context.Context, flakeRef string) ([]string, error)
	Warnings(ctx context.Context, flakeRef, host string) ([]string, error)
}

// Pong is an agent's answer to a ping.
type Pong struct {
	RTT          time.Duration // one Status round trip over an open connection
	Connect      time.Duration // the first Status, connection set-up included
	AgentVersion string
	System       string // its current store path
	Generation   int64
	SystemState  string // systemd's: running, degraded, ...
}

// Pinger asks a host's agent for its status over the tailnet.
type Pinger interface {
	Ping(ctx context.Context, addr string) (Pong, error)
}

// Git lists uncommitted changes of the work tree holding dir, one
// `git status --porcelain` line each; ErrNotGit when there is none.
type Git interface {
	Changes(ctx context.Context, dir string) ([]string, error)
}

// Options configure a Checklist.
type Options struct {
	// PingTimeout bounds each host's reachability check. Default (0): 15s.
	PingTimeout time.Duration
	// Jobs is how many nix evaluations run at once. Default (0):
	// runtime.NumCPU().
	Jobs int
}

// Checklist runs the checks.
type Checklist struct {
	eval Evaluator
	ping Pinger
	git  Git
	opts Options
	log  hclog.Logger
}

// New returns a Checklist; log may be nil.
func New(eval Evaluator, ping Pinger, git Git, opts Options, log hclog.Logger) *Checklist {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 15 * time.Second
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	return &Checklist{eval: eval, ping: ping, git: git, opts: opts, log: log.Named("preflight")}
}

// Input is what to check.
type Input struct {
	FlakeDir  string // the flake's directory (for git)
	FlakeRef  string // how nix reads it
	Inventory *inventory.Inventory
	Selectors []string // host names and @tags
	All       bool     // every host of the flake
	// Lock, if set, checks that flake.lock locks every input flake.nix
	// declares (see internal/flakeinputs); when it fails the flake is not
	// evaluated (nix would fetch the unlocked input).
	Lock func(ctx context.Context) error
}

// Report is the checklist's result.
type Report struct {
	Checks []Check
}

// Failed returns the failed checks.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// OK reports whether no check failed.
func (r Report) OK() bool { return len(r.Failed()) == 0 }

// Run runs every check it can; a failed check never stops the others
// (checks that depend on it are skipped).
func (cl *Checklist) Run(ctx context.Context, in Input) Report {
	var rep Report
	inv := in.Inventory
	if inv == nil {
		inv = &inventory.Inventory{Hosts: map[string]inventory.Host{}}
	}

	var flakeHosts []string
	err := lockCheck(ctx, &rep, in.Lock)
	if err == nil {
		flakeHosts, err = cl.eval.Hosts(ctx, in.FlakeRef)
	}
	if errors.Is(err, errLockFailed) {
		rep.Checks = append(rep.Checks, Check{Name: CheckFlake, Status: Skip, Detail: "flake.lock is incomplete"})
	} else if err != nil {
		rep.Checks = append(rep.Checks, Check{Name: CheckFlake, Status: Fail, Detail: oneLine(err)})
		flakeHosts = nil
	} else {
		rep.Checks = append(rep.Checks, Check{Name: CheckFlake, Status: OK,
			Detail: fmt.Sprintf("%d hosts: %s", len(flakeHosts), strings.Join(flakeHosts, ", "))})
	}
	flakeOK := err == nil

	rep.Checks = append(rep.Checks, cl.gitCheck(ctx, in.FlakeDir))

	hosts, err := selectHosts(inv, flakeHosts, in.Selectors, in.All)
	if err != nil {
		rep.Checks = append(rep.Checks, Check{Name: CheckSelect, Status: Fail, Detail: oneLine(err)})
		return rep
	}

	// One goroutine per host (Run waits for all); nix evaluations share
	// Jobs slots, pings run freely (they wait on the network).
	rows := make([][]Check, len(hosts))
	slots := make(chan struct{}, cl.opts.Jobs)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = cl.hostChecks(ctx, in.FlakeRef, h, flakeHosts, flakeOK, slots)
		}()
	}
	wg.Wait()
	for _, r := range rows {
		rep.Checks = append(rep.Checks, r...)
	}
	return rep
}

// errLockFailed: the lock check failed (its row says why).
var errLockFailed = errors.New("flake.lock incomplete")

// lockCheck adds the flake.lock row when lock is set.
func lockCheck(ctx context.Context, rep *Report, lock func(context.Context) error) error {
	if lock == nil {
		return nil
	}
	if err := lock(ctx); err != nil {
		rep.Checks = append(rep.Checks, Check{Name: CheckLock, Status: Fail, Detail: oneLine(err)})
		return errLockFailed
	}
	rep.Checks = append(rep.Checks, Check{Name: CheckLock, Status: OK, Detail: "every declared input is locked"})
	return nil
}

func (cl *Checklist) gitCheck(ctx context.Context, dir string) Check {
	c := Check{Name: CheckGit}
	changes, err := cl.git.Changes(ctx, dir)
	switch {
	case errors.Is(err, ErrNotGit):
		c.Status, c.Detail = Skip, "not a git checkout"
	case err != nil:
		c.Status, c.Detail = Warn, "git status: "+oneLine(err)
	case len(changes) > 0:
		c.Status, c.Items = Warn, changes
		c.Detail = fmt.Sprintf("%d uncommitted changes (deploy uploads tracked files as they are now)", len(changes))
	default:
		c.Status, c.Detail = OK, "nothing uncommitted"
	}
	return c
}

// selectHosts resolves @tags and --all against the flake's hosts, but takes
// plain names as given so a name missing from the flake becomes a failed
// "in flake" check instead of an error that hides the other checks.
func selectHosts(inv *inventory.Inventory, flakeHosts, selectors []string, all bool) ([]inventory.Host, error) {
	var names, tags []string
	for _, s := range selectors {
		if strings.HasPrefix(s, "@") {
			tags = append(tags, s)
		} else {
			names = append(names, s)
		}
	}
	if all && len(selectors) > 0 {
		return nil, errors.New("give host names/@tags or --all, not both")
	}
	var out []inventory.Host
	if all || len(tags) > 0 {
		sel, err := inv.Select(flakeHosts, tags, all)
		if err != nil {
			return nil, err
		}
		out = sel
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(h inventory.Host) bool { return h.Name == n }) {
			out = append(out, inv.Host(n))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no hosts selected: name hosts, @tags or --all")
	}
	slices.SortFunc(out, func(a, b inventory.Host) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (cl *Checklist) hostChecks(ctx context.Context, ref string, h inventory.Host, flakeHosts []string, flakeOK bool, slots chan struct{}) []Check {
	inFlake := Check{Name: CheckInFlake, Host: h.Name}
	switch {
	case !flakeOK:
		inFlake.Status, inFlake.Detail = Skip, "the flake does not evaluate"
	case slices.Contains(flakeHosts, h.Name):
		inFlake.Status, inFlake.Detail = OK, "nixosConfigurations."+h.Name
	default:
		inFlake.Status, inFlake.Detail = Fail, "not in nixosConfigurations (hosts: "+strings.Join(flakeHosts, ", ")+")"
	}

	// The ping and the evaluation overlap: one waits on the network, the
	// other on the CPU.
	var reach Check
	done := make(chan struct{})
	go func() {
		defer close(done)
		reach = cl.reachCheck(ctx, h)
	}()

	warn := Check{Name: CheckWarnings, Host: h.Name}
	if inFlake.Status != OK {
		warn.Status, warn.Detail = Skip, "not in the flake"
	} else {
		select {
		case slots <- struct{}{}:
			ws, err := cl.eval.Warnings(ctx, ref, h.Name)
			<-slots
			switch {
			case err != nil:
				warn.Status, warn.Detail = Fail, oneLine(err)
			case len(ws) > 0:
				warn.Status, warn.Detail, warn.Items = Warn, fmt.Sprintf("%d warnings", len(ws)), ws
			default:
				warn.Status, warn.Detail = OK, "none"
			}
		case <-ctx.Done():
			warn.Status, warn.Detail = Fail, ctx.Err().Error()
		}
	}
	<-done
	return []Check{inFlake, reach, warn}
}

func (cl *Checklist) reachCheck(ctx context.Context, h inventory.Host) Check {
	c := Check{Name: CheckReachable, Host: h.Name}
	pctx, cancel := context.WithTimeout(ctx, cl.opts.PingTimeout)
	defer cancel()
	p, err := cl.ping.Ping(pctx, h.Addr())
	if err != nil {
		cl.log.Debug("ping failed", "host", h.Name, "addr", h.Addr(), "error", err)
		c.Status, c.Detail = Fail, oneLine(err)
		return c
	}
	c.Status, c.RTT = OK, p.RTT
	c.Detail = fmt.Sprintf("rtt %s (first answer %s), agent %s, generation %d, %s",
		roundDur(p.RTT), roundDur(p.Connect), orDash(p.AgentVersion), p.Generation, orDash(p.SystemState))
	if h.Addr() != h.Name {
		c.Detail += ", as " + h.Addr()
	}
	return c
}

// WriteTable writes the checklist for people, then one line saying
// whether it passed.
func (r Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tHOST\tRESULT\tDETAIL")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, orDash(c.Host), c.Status, termsafe.Line(c.Detail))
		for _, it := range c.Items {
			fmt.Fprintf(tw, "\t\t\t  %s\n", termsafe.Line(it))
		}
	}
	tw.Flush()
	failed := r.Failed()
	if len(failed) == 0 {
		fmt.Fprintln(w, "\nPreflight passed: ready to deploy.")
		return
	}
	var names []string
	for _, c := range failed {
		if c.Host != "" {
			names = append(names, c.Host+": "+c.Name)
		} else {
			names = append(names, c.Name)
		}
	}
	fmt.Fprintf(w, "\nPreflight FAILED: %d of %d checks (%s)\n", len(failed), len(r.Checks), strings.Join(names, "; "))
}

// WriteJSON writes one JSON object per check and a final summary object.
func (r Report) WriteJSON(w io.Writer, exitCode int) {
	enc := json.NewEncoder(w)
	for _, c := range r.Checks {
		v := struct {
			Check
			RTTSeconds float64 `json:"rttSeconds,omitempty"`
		}{c, c.RTT.Seconds()}
		enc.Encode(v)
	}
	enc.Encode(map[string]any{"summary": true, "ok": r.OK(), "failed": len(r.Failed()), "total": len(r.Checks), "exitCode": exitCode})
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
