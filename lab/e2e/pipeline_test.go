package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// The deploy pipeline end to end: every mode and every way a deployment can
// fail, through the real pantherctl against real agents. Cases share a fleet
// and run in order within each test (booting a fleet costs seconds, each
// deploy several more); the tests, each with its own fleet, run in parallel.
// Helpers carry a "pl" prefix: every e2e test shares this package.

// plHostState is what a deployment may change on a host: the running system,
// the system profile's generations and the boot entry.
type plHostState struct {
	Current     string   // where /run/current-system points, "" if nowhere
	Generations []string // "system-N-link -> /nix/store/..." and "system -> system-N-link"
	BootEntry   string   // content of the lab boot entry, "" if none
}

func (s plHostState) String() string {
	return fmt.Sprintf("current %q\ngenerations:\n  %s\nboot entry:\n%s", s.Current, strings.Join(s.Generations, "\n  "), s.BootEntry)
}

// plStateOf reads h's plHostState from outside the sandbox.
func plStateOf(t *testing.T, h *fleettest.Host) plHostState {
	t.Helper()
	st := plHostState{Current: h.CurrentSystem(t), BootEntry: h.ReadFile(t, nixtest.BootEntry)}
	dir := h.SB.Path("/nix/var/nix/profiles")
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("%s: profiles: %v", h.Name, err)
	}
	for _, e := range entries {
		if e.Name() != "system" && !strings.HasPrefix(e.Name(), "system-") {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			st.Generations = append(st.Generations, e.Name()+" -> "+target)
		}
	}
	sort.Strings(st.Generations)
	return st
}

// plBootToplevel is the toplevel h's boot entry names ("" if none).
func plBootToplevel(t *testing.T, h *fleettest.Host) string {
	t.Helper()
	for _, l := range strings.Split(h.ReadFile(t, nixtest.BootEntry), "\n") {
		if v, ok := strings.CutPrefix(l, "toplevel "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// plDeploymentIDs lists the agent's journal records on h, sorted.
func plDeploymentIDs(t *testing.T, h *fleettest.Host) []string {
	t.Helper()
	entries, err := os.ReadDir(h.SB.Path(plDeploymentsDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("%s: deployments: %v", h.Name, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids
}

// plAgentLog is the agent-side log of deployment id on h.
func plAgentLog(t *testing.T, h *fleettest.Host, id string) string {
	t.Helper()
	return h.ReadFile(t, plDeploymentsDir+"/"+id+"/log")
}

// Where the fleet's agents keep their journal and uploaded sources.
const (
	plDeploymentsDir = "/var/lib/panther-agent/deployments"
	plSourcesDir     = "/var/lib/panther-agent/sources"
)

// plFleetOptions is a one-host fleet (alpha, variant good) whose agent
// judges health 200ms after a switch. (The fleet's "healthSettle": "0s"
// means the agent's default of 5s: a zero duration counts as unset.)
func plFleetOptions() fleettest.Options {
	return fleettest.Options{
		Hosts:       map[string]string{"alpha": nixtest.Good},
		AgentConfig: map[string]any{"healthSettle": "200ms"},
	}
}

// plDeployed is one pantherctl deploy and what it left on the host.
type plDeployed struct {
	fleettest.Result
	IDs []string // agent deployments it created, sorted
}

// id is the only deployment the run created.
func (d plDeployed) id(t *testing.T) string {
	t.Helper()
	if len(d.IDs) != 1 {
		t.Fatalf("want exactly one agent deployment, got %v\n%s", d.IDs, d.Result)
	}
	return d.IDs[0]
}

// plDeploy runs "pantherctl deploy <host> args... --flake <flake>" and fails
// the test unless it exits with want.
func plDeploy(t *testing.T, f *fleettest.Fleet, h *fleettest.Host, want int, args ...string) plDeployed {
	t.Helper()
	before := plDeploymentIDs(t, h)
	r := f.Ctl(append(append([]string{"deploy", h.Name}, args...), "--flake", f.Flake)...)
	d := plDeployed{Result: r}
	for _, id := range plDeploymentIDs(t, h) {
		if !slices.Contains(before, id) {
			d.IDs = append(d.IDs, id)
		}
	}
	if r.Code != want {
		t.Fatalf("pantherctl deploy %s %s: want exit %d, got %s\nagent:\n%s", h.Name, strings.Join(args, " "), want, r, h.AgentJournal())
	}
	return d
}

// plUnchanged fails the test unless h is still in state before.
func plUnchanged(t *testing.T, h *fleettest.Host, before plHostState) {
	t.Helper()
	if after := plStateOf(t, h); after.String() != before.String() {
		t.Errorf("%s changed:\n--- before\n%s\n--- after\n%s", h.Name, before, after)
	}
}

// plContains fails the test for every want missing from text.
func plContains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

var plLogLineRE = regexp.MustCompile(`(?m)^(\S+): full log: (\S+)$`)

// plControllerLog checks that pantherctl printed the path of its log for host,
// named logs/deploy/<mode>-<host>-<timestamp>.log, and returns its content.
func plControllerLog(t *testing.T, f *fleettest.Fleet, r fleettest.Result, host, mode string) string {
	t.Helper()
	var path string
	for _, m := range plLogLineRE.FindAllStringSubmatch(r.Stdout, -1) {
		if m[1] == host {
			path = m[2]
		}
	}
	if path == "" {
		t.Fatalf("pantherctl did not print its log path:\n%s", r)
	}
	name := regexp.MustCompile(`^` + regexp.QuoteMeta(mode+"-"+host+"-") + `\d{8}-\d{6}(-\d+)?\.log$`)
	if filepath.Base(filepath.Dir(path)) != "deploy" || !name.MatchString(filepath.Base(path)) {
		t.Errorf("controller log %s is not logs/deploy/%s-%s-<timestamp>.log", path, mode, host)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(f.Dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("controller log: %v", err)
	}
	return string(b)
}

var plStorePathRE = regexp.MustCompile(`/nix/store/[0-9a-z]{32}-nixos-system-[^\s:;,)]+`)

// TestPipelineModes covers the four modes and what each may change:
// --dry-run and --build-only nothing, --boot only the boot default, a
// switch everything; and the logs each leaves on both sides.
func TestPipelineModes(t *testing.T) {
	t.Parallel() // its own fleet
	f := fleettest.New(t, plFleetOptions())
	alpha := f.Hosts["alpha"]

	t.Run("no terminal and no --yes refuses", func(t *testing.T) {
		before := plStateOf(t, alpha)
		d := plDeploy(t, f, alpha, 2)
		plContains(t, "stderr", d.Stderr, "pass --yes")
		if len(d.IDs) != 0 {
			t.Errorf("the refused deploy reached the agent: %v", d.IDs)
		}
		plUnchanged(t, alpha, before)
	})

	var good string
	t.Run("switch", func(t *testing.T) {
		d := plDeploy(t, f, alpha, 0, "--yes")
		id := d.id(t)
		plContains(t, "output", d.Stdout, "result: confirmed", "would start: lab-greeter.service, lab-hello.service")
		good = alpha.CurrentSystem(t)
		if !strings.Contains(good, "nixos-system-alpha-26.05.lab_good") {
			t.Fatalf("current system after the switch = %q", good)
		}
		if got := plBootToplevel(t, alpha); got != good {
			t.Errorf("boot entry names %q, want %q", got, good)
		}
		if rec := alpha.Record(t, id); rec["state"] != "confirmed" {
			t.Errorf("record: %v", rec)
		}
		for _, u := range []string{nixtest.HelloUnit, nixtest.GreeterUnit} {
			if out := alpha.SB.Run(t, "systemctl", "is-active", u); out != "active" {
				t.Errorf("%s is %s after the switch", u, out)
			}
		}
		// The agent's log has every step's output, the switch's too (the
		// transient unit writes it there itself).
		// (The build output itself may be missing: nix reuses a toplevel
		// already in the store. The build-failure case checks it.)
		plContains(t, "agent log", plAgentLog(t, alpha, id),
			"[build] built "+good,
			"[dry-activate] would start the following units: lab-greeter.service, lab-hello.service",
			"starting the following units: lab-greeter.service, lab-hello.service",
			"switched to "+good+" (test), exit 0", // test, then boot:
			"boot entry for "+good+" written",     // the confirm's boot
			"[result] confirmed")
		plContains(t, "controller log", plControllerLog(t, f, d.Result, "alpha", "switch"),
			"built "+good,
			"would start: lab-greeter.service, lab-hello.service",
			"switched to "+good+" (test), exit 0",
			"result: confirmed")
	})
	if good == "" {
		t.FailNow()
	}

	for _, tc := range []struct{ variant, would, unit string }{
		{nixtest.WebOK, "would start: lab-web.service", nixtest.WebUnit},
		{nixtest.GoodV2, "would restart: lab-hello.service", ""},
	} {
		t.Run("dry-run changes nothing/"+tc.variant, func(t *testing.T) {
			f.SetVariant("alpha", tc.variant)
			before := plStateOf(t, alpha)
			hello := alpha.SB.Run(t, "systemctl", "show", "--property=ExecMainPID", "--value", nixtest.HelloUnit)
			d := plDeploy(t, f, alpha, 0, "--dry-run")
			id := d.id(t)
			plContains(t, "output", d.Stdout, tc.would, "current system: "+good, "result: dry activated")
			plUnchanged(t, alpha, before)
			if tc.unit != "" {
				if out, _ := alpha.SB.Exec(t.Context(), "systemctl", "is-active", tc.unit); strings.TrimSpace(string(out)) == "active" {
					t.Errorf("dry-run started %s", tc.unit)
				}
			}
			if now := alpha.SB.Run(t, "systemctl", "show", "--property=ExecMainPID", "--value", nixtest.HelloUnit); now != hello {
				t.Errorf("dry-run restarted %s (PID %s, was %s)", nixtest.HelloUnit, now, hello)
			}
			if rec := alpha.Record(t, id); rec["state"] != "dry-activated" {
				t.Errorf("record: %v", rec)
			}
			plContains(t, "agent log", plAgentLog(t, alpha, id), "[build] built /nix/store/", "[dry-activate] "+strings.Replace(tc.would, ":", " the following units:", 1))
			plContains(t, "controller log", plControllerLog(t, f, d.Result, "alpha", "dry-run"), tc.would)
		})
	}

	t.Run("build-only changes nothing", func(t *testing.T) {
		f.SetVariant("alpha", nixtest.GoodV2)
		before := plStateOf(t, alpha)
		d := plDeploy(t, f, alpha, 0, "--build-only")
		id := d.id(t)
		plContains(t, "output", d.Stdout, "==> build", "result: built")
		built := plStorePathRE.FindString(d.Stdout[strings.Index(d.Stdout, "result: built"):])
		if !strings.Contains(built, "lab_good_v2") {
			t.Fatalf("no good-v2 store path in the result:\n%s", d.Stdout)
		}
		if _, err := os.Stat(alpha.SB.Path(built + "/bin/switch-to-configuration")); err != nil {
			t.Errorf("built system is not in the host's store: %v", err)
		}
		if strings.Contains(d.Stdout, "==> dry-activate") || strings.Contains(plAgentLog(t, alpha, id), "[dry-activate]") {
			t.Errorf("build-only dry-activated:\n%s", d.Stdout)
		}
		plUnchanged(t, alpha, before)
		if rec := alpha.Record(t, id); rec["state"] != "built" {
			t.Errorf("record: %v", rec)
		}
		plControllerLog(t, f, d.Result, "alpha", "build")
	})

	t.Run("boot sets only the boot default", func(t *testing.T) {
		f.SetVariant("alpha", nixtest.GoodV2)
		before := plStateOf(t, alpha)
		d := plDeploy(t, f, alpha, 0, "--boot", "--yes")
		id := d.id(t)
		plContains(t, "output", d.Stdout, "boot default")
		rec := alpha.Record(t, id)
		next, _ := rec["newPath"].(string)
		if rec["state"] != "boot-scheduled" || !strings.Contains(next, "lab_good_v2") {
			t.Fatalf("record: %v", rec)
		}
		if got := plBootToplevel(t, alpha); got != next {
			t.Errorf("boot entry names %q, want the new %q", got, next)
		}
		if got := alpha.CurrentSystem(t); got != before.Current {
			t.Errorf("--boot changed %s to %s", nixtest.CurrentSystem, got)
		}
		if got := alpha.SB.Run(t, "systemctl", "show", "--property=Environment", "--value", nixtest.HelloUnit); strings.Contains(got, "LAB_HELLO_VERSION") {
			t.Errorf("--boot restarted lab-hello with the new unit (%s)", got)
		}
		plContains(t, "agent log", plAgentLog(t, alpha, id), "boot entry for "+next+" written")
		plControllerLog(t, f, d.Result, "alpha", "boot")
	})
}

// TestPipelineFailuresChangeNothing covers every failure before the switch:
// each exits 3, says why, and leaves the host exactly as it was.
func TestPipelineFailuresChangeNothing(t *testing.T) {
	t.Parallel() // its own fleet
	f := fleettest.New(t, plFleetOptions())
	alpha := f.Hosts["alpha"]
	plDeploy(t, f, alpha, 0, "--yes")
	good := alpha.CurrentSystem(t)

	for _, tc := range []struct {
		name    string
		variant string
		hosts   map[string]string // hosts.json instead of alpha: variant
		args    []string
		phase   string   // where the agent's record says it failed
		out     []string // in pantherctl's output (stdout and stderr)
		agent   []string // in the agent's log
		ctlLog  []string // in the controller's log
	}{
		{
			name: "build failure", variant: nixtest.BuildFail, phase: "build",
			out:    []string{"compiling lab-broken (1/2)", "lab-broken.c:3:1: error: expected ';' before '}' token", "failed in build"},
			agent:  []string{"[build] nixos-system-alpha> compiling lab-broken (1/2)", "[build] nixos-system-alpha> lab-broken.c:3:1: error: expected ';'", "[result] failed"},
			ctlLog: []string{"compiling lab-broken (1/2)", "lab-broken.c:3:1: error: expected ';'"},
		},
		{
			name: "evaluation error", variant: nixtest.EvalError,
			out:   []string{"evaluation of alpha fails on purpose"},
			agent: []string{"evaluation of alpha fails on purpose", "[result] failed"},
		},
		{
			name: "unknown host", hosts: map[string]string{"beta": nixtest.Good, "gamma": nixtest.Good}, phase: "validate",
			out:   []string{`"alpha" is not in nixosConfigurations`, "beta, gamma"},
			agent: []string{"beta, gamma"},
		},
		{
			name: "warnings with --fail-on-warnings", variant: nixtest.Warnings, args: []string{"--fail-on-warnings"}, phase: "validate",
			out:   []string{"warning: lab warning one: services.lab-hello uses a deprecated option", "warning: lab warning two", "--fail-on-warnings"},
			agent: []string{"[warning] lab warning one", "[warning] lab warning two"},
		},
		{
			name: "dry-activate failure", variant: nixtest.DryFail, phase: "dry-activate",
			out:    []string{"error: dry activation failed: lab variant dry-fail refuses to activate"},
			agent:  []string{"[dry-activate] error: dry activation failed", "[result] failed"},
			ctlLog: []string{"error: dry activation failed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hosts != nil {
				nixtest.WriteHosts(t, f.Flake, tc.hosts)
				t.Cleanup(func() { f.SetVariant("alpha", nixtest.Good) })
			} else {
				f.SetVariant("alpha", tc.variant)
			}
			before := plStateOf(t, alpha)
			if before.Current != good {
				t.Fatalf("starts from %s, want %s", before.Current, good)
			}
			d := plDeploy(t, f, alpha, 3, append([]string{"--yes"}, tc.args...)...)
			id := d.id(t)
			plContains(t, "pantherctl output", d.Stdout+d.Stderr, tc.out...)
			plUnchanged(t, alpha, before)
			rec := alpha.Record(t, id)
			if rec["state"] != "failed" || (tc.phase != "" && rec["phase"] != tc.phase) {
				t.Errorf("record: want failed in %q, got %v", tc.phase, rec)
			}
			plContains(t, "agent log", plAgentLog(t, alpha, id), tc.agent...)
			plContains(t, "controller log", plControllerLog(t, f, d.Result, "alpha", "switch"), tc.ctlLog...)
		})
	}

	t.Run("warnings are shown", func(t *testing.T) {
		f.SetVariant("alpha", nixtest.Warnings)
		before := plStateOf(t, alpha)
		d := plDeploy(t, f, alpha, 0, "--dry-run")
		plContains(t, "output", d.Stdout, "warning: lab warning one: services.lab-hello uses a deprecated option",
			"warning: lab warning two: networking.lab is not set", "dry-activated")
		plUnchanged(t, alpha, before)
	})
}

// TestPipelineSwitchFailuresRollBack covers what happens after the switch
// started: a failed activation and a unit that does not start are rolled
// back (exit 4), a switch that restarts the agent itself still completes,
// and a second deploy is refused while one awaits confirmation.
func TestPipelineSwitchFailuresRollBack(t *testing.T) {
	t.Parallel() // its own fleet
	f := fleettest.New(t, plFleetOptions())
	alpha := f.Hosts["alpha"]
	plDeploy(t, f, alpha, 0, "--yes")
	good := plStateOf(t, alpha)

	for _, tc := range []struct {
		name, variant string
		exit          string // switch-to-configuration's exit, as the agent reports it
	}{
		{"activation fails", nixtest.ActivationFail, "switch-to-configuration exited 2"},
		// s-t-c exits 4; the unit is new since the baseline: the health
		// check rolls it back.
		{"unit fails to start", nixtest.UnitFail, "failed-unit lab-broken.service: failed since the baseline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cur := alpha.CurrentSystem(t); cur != good.Current {
				t.Fatalf("starts from %s, want %s", cur, good.Current)
			}
			f.SetVariant("alpha", tc.variant)
			d := plDeploy(t, f, alpha, 4, "--yes")
			id := d.id(t)
			plContains(t, "output", d.Stdout+d.Stderr, "rolled back", tc.exit)
			if cur := alpha.CurrentSystem(t); cur != good.Current {
				t.Errorf("after the rollback the current system is %s, want %s", cur, good.Current)
			}
			if got := plBootToplevel(t, alpha); got != good.Current {
				t.Errorf("after the rollback the boot entry names %s, want %s", got, good.Current)
			}
			rec := alpha.Record(t, id)
			if rec["state"] != "rolled-back" || rec["previousPath"] != good.Current {
				t.Errorf("record: %v", rec)
			}
			if out, _ := alpha.SB.Exec(t.Context(), "systemctl", "is-active", nixtest.BrokenUnit); strings.TrimSpace(string(out)) == "active" {
				t.Errorf("%s is still active after the rollback", nixtest.BrokenUnit)
			}
			plContains(t, "agent log", plAgentLog(t, alpha, id), "[switch] started", tc.exit, "[rollback] restoring "+good.Current, "[result] rolled-back")
		})
	}

	t.Run("switch restarts the agent", func(t *testing.T) {
		agentPID := func() string {
			return alpha.SB.Run(t, "systemctl", "show", "--property=MainPID", "--value", "panther-agent.service")
		}
		before := agentPID()
		f.SetVariant("alpha", nixtest.RestartAgent)
		d := plDeploy(t, f, alpha, 0, "--yes")
		id := d.id(t)
		after := agentPID()
		if after == before {
			t.Fatalf("panther-agent was not restarted (main PID still %s)", before)
		}
		plContains(t, "output", d.Stdout, "restarting panther-agent.service", "result: confirmed")
		if rec := alpha.Record(t, id); rec["state"] != "confirmed" {
			t.Errorf("record: %v", rec)
		}
		if cur := alpha.CurrentSystem(t); !strings.Contains(cur, "lab_restart_agent") {
			t.Errorf("current system %s", cur)
		}
		// The restarted agent picked the deployment up from its journal,
		// and the confirmation reached it, not the agent that started the
		// switch. Whether pantherctl's event stream broke before the
		// deployment awaited confirmation (and it reattached with Watch)
		// depends on how fast the old agent stops; either way it ends
		// confirmed.
		plContains(t, "agent log", plAgentLog(t, alpha, id), "restarting panther-agent.service",
			"agent started: resuming deployment in state", "[result] confirmed")
		confirmedByNew := false
		for _, l := range strings.Split(alpha.AgentJournal(), "\n") {
			if strings.Contains(l, "panther-agent["+after+"]:") && strings.Contains(l, "action=ACTION_CONFIRM deployment="+id) {
				confirmedByNew = true
			}
		}
		if !confirmedByNew {
			t.Errorf("the restarted agent (PID %s) did not receive the confirmation:\n%s", after, alpha.AgentJournal())
		}
		t.Logf("pantherctl reattached: %v", strings.Contains(d.Stdout, "reattaching"))
	})

	t.Run("a second deploy is refused while one awaits confirmation", func(t *testing.T) {
		f.SetVariant("alpha", nixtest.GoodV2)
		first := plDeploy(t, f, alpha, 0, "--yes", "--no-confirm", "--detach", "--confirm-timeout", "45s")
		id := first.id(t)
		plContains(t, "first output", first.Stdout, "not confirming (--no-confirm --detach)")
		switched := alpha.CurrentSystem(t)

		f.SetVariant("alpha", nixtest.Good)
		second := plDeploy(t, f, alpha, 6, "--yes")
		plContains(t, "refusal", second.Stderr, id, "in progress")
		if len(second.IDs) != 0 {
			t.Errorf("the refused deploy left records %v", second.IDs)
		}

		// The first is unharmed: still awaiting, and it can be confirmed.
		if rec := alpha.Record(t, id); rec["state"] != "awaiting" || rec["newPath"] != switched {
			t.Fatalf("first deployment after the refusal: %v", rec)
		}
		conn := plDialAgent(t, f, "alpha")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		res, err := conn.Confirm(ctx, plOperator(t, f), id)
		if err != nil {
			t.Fatalf("confirming the first deployment: %v", err)
		}
		if res.Outcome != agentv1.Outcome_OUTCOME_CONFIRMED || alpha.CurrentSystem(t) != switched {
			t.Errorf("confirm: %v; current %s, want %s", res, alpha.CurrentSystem(t), switched)
		}
	})
}

// plDialAgent connects an in-process controller node to host's agent.
func plDialAgent(t *testing.T, f *fleettest.Fleet, host string) *client.Conn {
	t.Helper()
	node := f.Tailnet.Node(t, "ctl2", "tag:panther-controller")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, node, host, 7443)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// plOperator signs intents with the key the fleet's agents trust.
func plOperator(t *testing.T, f *fleettest.Fleet) client.Signer {
	t.Helper()
	key, err := signing.ReadPrivateKey(f.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return client.Signer{Key: key}
}

// plTarEntry is one entry of a hand-made archive.
type plTarEntry struct {
	hdr  tar.Header
	body []byte
}

func plMakeTar(t *testing.T, entries ...plTarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func plDigestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestUploadRefusesBadArchives sends hostile archives with a valid signed
// upload intent straight to an agent: each is refused with the right code
// and nothing of it lands on the host.
func TestUploadRefusesBadArchives(t *testing.T) {
	t.Parallel() // its own fleet
	const maxUpload = 256 << 10
	f := fleettest.New(t, fleettest.Options{
		Hosts:       map[string]string{"alpha": nixtest.Good},
		AgentConfig: map[string]any{"maxUploadBytes": maxUpload},
	})
	alpha := f.Hosts["alpha"]
	conn := plDialAgent(t, f, "alpha")
	signer := plOperator(t, f)

	file := func(name, body string) plTarEntry {
		return plTarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, body: []byte(body)}
	}
	dir := func(name string) plTarEntry {
		return plTarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
	}
	link := func(name, target string) plTarEntry {
		return plTarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
	}
	flake := file("flake.nix", "{ outputs = { self }: { }; }\n")
	valid := plMakeTar(t, flake, dir("sub/"), file("sub/a.txt", strings.Repeat("panther\n", 512)))
	big := make([]byte, maxUpload+1)

	// Paths outside the sources directory an escaping entry would write to.
	escapes := []string{"/etc/panther-escaped", "/var/lib/panther-agent/escaped", "/var/lib/panther-agent/sources/escaped", "/tmp/panther-escaped"}

	for _, tc := range []struct {
		name   string
		tar    []byte
		digest string // default: the digest of tar
		code   codes.Code
	}{
		{name: "path traversal", tar: plMakeTar(t, flake, file("../../escaped", "x")), code: codes.InvalidArgument},
		{name: "deep traversal", tar: plMakeTar(t, flake, file("sub/../../../../../../etc/panther-escaped", "x")), code: codes.InvalidArgument},
		{name: "absolute path", tar: plMakeTar(t, flake, file("/etc/panther-escaped", "x")), code: codes.InvalidArgument},
		{name: "symlink escape", tar: plMakeTar(t, flake, link("out", "../../escaped")), code: codes.InvalidArgument},
		{name: "absolute symlink", tar: plMakeTar(t, flake, link("etc", "/etc")), code: codes.InvalidArgument},
		{name: "device file", tar: plMakeTar(t, flake, plTarEntry{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}), code: codes.InvalidArgument},
		{name: "fifo", tar: plMakeTar(t, flake, plTarEntry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}), code: codes.InvalidArgument},
		{name: "hard link", tar: plMakeTar(t, flake, plTarEntry{hdr: tar.Header{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}), code: codes.InvalidArgument},
		{name: "larger than maxUploadBytes", tar: plMakeTar(t, flake, plTarEntry{hdr: tar.Header{Name: "big", Typeflag: tar.TypeReg}, body: big}), code: codes.ResourceExhausted},
		{name: "truncated stream", tar: valid[:len(valid)/2], digest: plDigestOf(valid), code: codes.InvalidArgument},
		{name: "digest mismatch", tar: valid, digest: plDigestOf(append(valid[:len(valid):len(valid)], 0)), code: codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			digest := tc.digest
			if digest == "" {
				digest = plDigestOf(tc.tar)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err := conn.Upload(ctx, signer, digest, bytes.NewReader(tc.tar))
			if status.Code(err) != tc.code {
				t.Fatalf("upload: want %v, got %v", tc.code, err)
			}
			t.Logf("refused: %v", err)
			plSourcesEmpty(t, alpha)
			for _, p := range escapes {
				if _, err := os.Lstat(alpha.SB.Path(p)); err == nil {
					t.Errorf("%s exists on the host", p)
				}
			}
			has, err := conn.API.HasSource(ctx, &agentv1.HasSourceRequest{Digest: digest})
			if err != nil || has.Present {
				t.Errorf("HasSource(%s) = %v, %v after the refusal", digest, has, err)
			}
		})
	}

	// The same connection, key and agent accept a good archive: the
	// refusals above were about the archives.
	t.Run("valid archive is stored", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		digest := plDigestOf(valid)
		if _, err := conn.Upload(ctx, signer, digest, bytes.NewReader(valid)); err != nil {
			t.Fatalf("upload: %v", err)
		}
		got, err := os.ReadFile(alpha.SB.Path(plSourcesDir + "/" + strings.TrimPrefix(digest, "sha256:") + "/sub/a.txt"))
		if err != nil || !strings.HasPrefix(string(got), "panther\n") {
			t.Errorf("stored tree: %q, %v", got, err)
		}
	})
}

// plSourcesEmpty fails the test if anything is left under the agent's sources
// directory (a stored tree or a staging directory).
func plSourcesEmpty(t *testing.T, h *fleettest.Host) {
	t.Helper()
	dir := h.SB.Path(plSourcesDir)
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			left = append(left, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("left under %s: %v", plSourcesDir, left)
	}
}
