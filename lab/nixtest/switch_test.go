package nixtest_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// runScript runs a toplevel's switch-to-configuration on this machine and
// returns its combined output. Only for dry-activate: switch changes the
// machine.
func runScript(t *testing.T, top, action string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), top+"/bin/switch-to-configuration", action).CombinedOutput()
	return string(out), err
}

// buildAll builds the toplevel of every listed variant (host "h-<variant>")
// and returns them by variant.
func buildAll(t *testing.T, n *nix.Nix, variants ...string) map[string]string {
	t.Helper()
	hosts := map[string]string{}
	for _, v := range variants {
		hosts["h-"+v] = v
	}
	dir := nixtest.Flake(t, hosts)
	tops := map[string]string{}
	for _, v := range variants {
		installable, err := nix.Toplevel(nixtest.Ref(dir), "h-"+v)
		if err != nil {
			t.Fatal(err)
		}
		if tops[v], err = n.Build(t.Context(), installable, nil); err != nil {
			t.Fatalf("build %s: %v", v, err)
		}
	}
	return tops
}

// TestSwitchInSandbox runs the lab switch-to-configuration of several
// variants, one after the other, inside a real systemd with its own network
// namespace, and checks what each did to units, links, the boot entry and
// /run/current-system.
func TestSwitchInSandbox(t *testing.T) {
	n := nixtest.Nix(t)
	sandboxtest.Require(t, true)
	tops := buildAll(t, n, nixtest.Good, nixtest.GoodV2, nixtest.UnitFail, nixtest.WebOK, nixtest.WebBroken,
		nixtest.ActivationFail, nixtest.RebootRequired, nixtest.RestartAgent, nixtest.CutNetwork, nixtest.CutControl, nixtest.DryFail,
		nixtest.NewKernel, nixtest.Inhibited, nixtest.Specialised, nixtest.HangSwitch, nixtest.NoRestart)
	s := sandboxtest.Boot(t, sandboxtest.Options{
		Name:  "lab",
		NetNS: true,
		Units: map[string]string{
			"panther-agent.service": "[Service]\nExecStart=/bin/sleep infinity\n",
		},
		Enable: []string{"panther-agent.service"},
	})
	if err := s.WaitUnit(t.Context(), "panther-agent.service", "active"); err != nil {
		t.Fatal(err)
	}

	show := func(t *testing.T, unit, prop string) string {
		t.Helper()
		return s.Run(t, "systemctl", "show", "--value", "--property="+prop, unit)
	}
	current := func(t *testing.T) string {
		t.Helper()
		return s.Run(t, "readlink", nixtest.CurrentSystem)
	}
	httpStatus := func(t *testing.T) string {
		t.Helper()
		return s.Run(t, "python3", "-c", `import urllib.request as r, urllib.error as e
try: print(r.urlopen("http://`+nixtest.WebAddr+`/", timeout=5).status)
except e.HTTPError as x: print(x.code)`)
	}
	// linksUp reports, for every link but lo, whether it is administratively up.
	linksUp := func(t *testing.T) map[string]bool {
		t.Helper()
		links := map[string]bool{}
		for _, line := range strings.Split(s.Run(t, "ip", "-o", "link", "show"), "\n") {
			f := strings.SplitN(line, ": ", 3)
			if len(f) < 3 {
				continue
			}
			name, _, _ := strings.Cut(f[1], "@")
			flags, _, _ := strings.Cut(strings.TrimPrefix(f[2], "<"), ">")
			if name != "lo" {
				links[name] = strings.Contains(","+flags+",", ",UP,")
			}
		}
		return links
	}
	var pids struct{ hello, greeter, agent string }
	asUser := "" // run the step's switch-to-configuration as this user

	steps := []struct {
		name     string
		variant  string
		action   string // default "switch"
		env      []string
		before   func(t *testing.T)
		wantExit int
		wantOut  []string
		notOut   []string
		check    func(t *testing.T, top string)
	}{
		{
			name: "first switch starts every unit", variant: nixtest.Good,
			wantOut: []string{"starting the following units: lab-greeter.service, lab-hello.service"},
			check: func(t *testing.T, top string) {
				for _, u := range nixtest.Units(nixtest.Good) {
					if st := show(t, u, "ActiveState"); st != "active" {
						t.Errorf("%s is %s", u, st)
					}
				}
				if got := current(t); got != top {
					t.Errorf("current-system = %s, want %s", got, top)
				}
				if entry := s.Run(t, "cat", nixtest.BootEntry); !strings.Contains(entry, top) {
					t.Errorf("boot entry does not name %s:\n%s", top, entry)
				}
				pids.hello, pids.greeter = show(t, nixtest.HelloUnit, "MainPID"), show(t, nixtest.GreeterUnit, "MainPID")
			},
		},
		{
			name: "dry-activate names only the changed unit", variant: nixtest.GoodV2, action: "dry-activate",
			wantOut: []string{"would restart the following units: lab-hello.service"},
			notOut:  []string{"lab-greeter", "would start", "would stop"},
			check: func(t *testing.T, top string) {
				if got := current(t); got == top {
					t.Errorf("dry-activate switched")
				}
			},
		},
		{
			name: "switch restarts only the changed unit", variant: nixtest.GoodV2,
			wantOut: []string{"restarting the following units: lab-hello.service"},
			notOut:  []string{"lab-greeter"},
			check: func(t *testing.T, top string) {
				if got := show(t, nixtest.HelloUnit, "Environment"); got != "LAB_HELLO_VERSION=2" {
					t.Errorf("lab-hello environment %q", got)
				}
				if show(t, nixtest.HelloUnit, "MainPID") == pids.hello {
					t.Errorf("lab-hello was not restarted")
				}
				if show(t, nixtest.GreeterUnit, "MainPID") != pids.greeter {
					t.Errorf("lab-greeter was restarted")
				}
				if got := current(t); got != top {
					t.Errorf("current-system = %s, want %s", got, top)
				}
			},
		},
		{
			// What a deploy runs in its confirm window (test, then boot).
			name: "test activates and leaves the boot entry alone", variant: nixtest.Good, action: "test",
			wantOut: []string{"restarting the following units: lab-hello.service"},
			check: func(t *testing.T, top string) {
				if got := current(t); got != top {
					t.Errorf("current-system = %s, want %s", got, top)
				}
				if got := show(t, nixtest.HelloUnit, "Environment"); got == "LAB_HELLO_VERSION=2" {
					t.Errorf("lab-hello still runs version 2")
				}
				if entry := s.Run(t, "cat", nixtest.BootEntry); !strings.Contains(entry, "toplevel "+tops[nixtest.GoodV2]) {
					t.Errorf("test touched the boot entry:\n%s", entry)
				}
				// Back to good-v2, by test again: the boot entry is v2's.
				if out, err := s.Exec(t.Context(), tops[nixtest.GoodV2]+"/bin/switch-to-configuration", "test"); err != nil {
					t.Fatalf("test back to good-v2: %v\n%s", err, out)
				}
				if got := current(t); got != tops[nixtest.GoodV2] {
					t.Errorf("current-system = %s after test back to good-v2", got)
				}
			},
		},
		{
			name: "boot only writes the boot entry", variant: nixtest.Good, action: "boot",
			check: func(t *testing.T, top string) {
				if entry := s.Run(t, "cat", nixtest.BootEntry); !strings.Contains(entry, top) {
					t.Errorf("boot entry does not name %s:\n%s", top, entry)
				}
				if got := current(t); got != tops[nixtest.GoodV2] {
					t.Errorf("boot changed current-system to %s", got)
				}
			},
		},
		{
			name: "dry-activate lists a changed unit that must not restart", variant: nixtest.NoRestart, action: "dry-activate",
			wantOut: []string{"would NOT stop the following changed units: lab-hello.service"},
			notOut:  []string{"would restart", "would start", "would stop the"},
		},
		{
			name: "switch leaves a changed X-RestartIfChanged=false unit running", variant: nixtest.NoRestart,
			env:     []string{"NIXOS_INSTALL_BOOTLOADER=1"},
			wantOut: []string{"NOT restarting the following changed units: lab-hello.service", "installing the boot loader"},
			notOut:  []string{"restarting the following units", "stopping"},
			before:  func(t *testing.T) { pids.hello = show(t, nixtest.HelloUnit, "MainPID") },
			check: func(t *testing.T, top string) {
				if show(t, nixtest.HelloUnit, "MainPID") != pids.hello {
					t.Errorf("lab-hello was restarted")
				}
				s.Run(t, "test", "-e", "/boot/loader/installed")
			},
		},
		{
			name: "a unit that fails to start", variant: nixtest.UnitFail, wantExit: 4,
			wantOut: []string{"the following units failed: lab-broken.service"},
			check: func(t *testing.T, top string) {
				if st := show(t, nixtest.BrokenUnit, "ActiveState"); st != "failed" {
					t.Errorf("lab-broken is %s, want failed", st)
				}
			},
		},
		{
			name: "rollback stops and removes the extra unit", variant: nixtest.Good,
			wantOut: []string{"stopping the following units: lab-broken.service"},
			check: func(t *testing.T, top string) {
				if out, err := s.Exec(t.Context(), "test", "-e", "/etc/systemd/system/"+nixtest.BrokenUnit); err == nil {
					t.Errorf("lab-broken.service still installed: %s", out)
				}
			},
		},
		{
			name: "web-ok answers 200", variant: nixtest.WebOK,
			check: func(t *testing.T, top string) {
				if got := httpStatus(t); got != "200" {
					t.Errorf("HTTP status %s, want 200", got)
				}
			},
		},
		{
			name: "web-broken answers 500 and stays active", variant: nixtest.WebBroken,
			wantOut: []string{"restarting the following units: lab-web.service"},
			check: func(t *testing.T, top string) {
				if got := httpStatus(t); got != "500" {
					t.Errorf("HTTP status %s, want 500", got)
				}
				if st := show(t, nixtest.WebUnit, "ActiveState"); st != "active" {
					t.Errorf("lab-web is %s", st)
				}
			},
		},
		{name: "activation-fail", variant: nixtest.ActivationFail, wantExit: 2, wantOut: []string{"activation script failed"}},
		{
			name: "reboot-required dry-activate exits 100", variant: nixtest.RebootRequired, action: "dry-activate", wantExit: 100,
			wantOut: []string{"incompatible with the current configuration"},
		},
		{
			name: "reboot-required sets the boot default, exits 100, activates nothing", variant: nixtest.RebootRequired, wantExit: 100,
			wantOut: []string{"won't take effect until you reboot"},
			notOut:  []string{"activating the configuration"},
			check: func(t *testing.T, top string) {
				if got := current(t); got != tops[nixtest.ActivationFail] {
					t.Errorf("current-system = %s, want still %s", got, tops[nixtest.ActivationFail])
				}
				if entry := s.Run(t, "cat", nixtest.BootEntry); !strings.Contains(entry, "init="+top+"/init") {
					t.Errorf("boot entry does not name %s:\n%s", top, entry)
				}
			},
		},
		{
			name: "a reboot brings up the boot default", variant: nixtest.Good, action: "dry-activate", wantExit: 100,
			before: func(t *testing.T) {
				s.Reboot(t)
				top := tops[nixtest.RebootRequired]
				if got := current(t); got != top {
					t.Errorf("after reboot current-system = %s, want the boot default %s", got, top)
				}
				if got := s.Run(t, "readlink", nixtest.BootedSystem); got != top {
					t.Errorf("after reboot booted-system = %s, want %s", got, top)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				for _, u := range nixtest.Units(nixtest.RebootRequired) {
					if err := s.WaitUnit(ctx, u, "active"); err != nil {
						t.Errorf("after reboot: %v", err)
					}
				}
			},
		},
		{
			name: "boot good, reboot into it", variant: nixtest.Good, action: "boot",
			notOut: []string{"activating"},
			check: func(t *testing.T, top string) {
				if got := current(t); got != tops[nixtest.RebootRequired] {
					t.Errorf("boot changed current-system to %s", got)
				}
				s.Reboot(t)
				if got := current(t); got != top {
					t.Errorf("after reboot current-system = %s, want %s", got, top)
				}
			},
		},
		{
			name: "new-kernel switches; booted-system keeps the old kernel", variant: nixtest.NewKernel,
			check: func(t *testing.T, top string) {
				booted := s.Run(t, "cat", nixtest.BootedSystem+"/kernel")
				cur := s.Run(t, "cat", nixtest.CurrentSystem+"/kernel")
				if !strings.Contains(booted, nixtest.KernelVersion) || !strings.Contains(cur, nixtest.NewKernelVersion) {
					t.Errorf("booted kernel %q, current kernel %q", booted, cur)
				}
			},
		},
		{
			name: "check refuses changed switch inhibitors", variant: nixtest.Inhibited, action: "check", wantExit: 1,
			wantOut: []string{"changes to critical components", "lab-critical-component 2"},
		},
		{
			name: "switch refuses changed switch inhibitors", variant: nixtest.Inhibited, wantExit: 1,
			wantOut: []string{"changes to critical components"},
			check: func(t *testing.T, top string) {
				if got := current(t); got == top {
					t.Errorf("switched to the inhibited system")
				}
			},
		},
		{name: "check passes without inhibitor changes", variant: nixtest.Good, action: "check"},
		{
			name: "a specialisation is a full toplevel", variant: nixtest.Specialised,
			check: func(t *testing.T, top string) {
				spec := top + "/specialisation/" + nixtest.SpecialisationName
				if out, err := s.Exec(t.Context(), spec+"/bin/switch-to-configuration", "test"); err != nil {
					t.Fatalf("specialisation test: %v\n%s", err, out)
				}
				if got := current(t); got != spec {
					t.Errorf("current-system = %s, want %s", got, spec)
				}
				if st := show(t, nixtest.ExtraUnit, "ActiveState"); st != "active" {
					t.Errorf("%s is %s", nixtest.ExtraUnit, st)
				}
			},
		},
		{
			name: "a switch that hangs holds the lock", variant: nixtest.Good, wantExit: 11,
			wantOut: []string{"Could not acquire lock"},
			before: func(t *testing.T) {
				s.Run(t, "systemd-run", "--unit=hang-switch", "--collect", tops[nixtest.HangSwitch]+"/bin/switch-to-configuration", "switch")
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				if err := s.WaitUnit(ctx, nixtest.HangUnit, "activating"); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, top string) {
				s.Run(t, "systemctl", "stop", "hang-switch.service", nixtest.HangUnit)
			},
		},
		{
			name: "a held lock", variant: nixtest.Good, action: "dry-activate", wantExit: 11,
			wantOut: []string{"Could not acquire lock"},
			before:  func(t *testing.T) { sandboxtest.HoldSwitchLock(t, s) },
		},
		{
			name: "a unit failing before the switch", variant: nixtest.Good, wantExit: 4,
			wantOut: []string{"the following units failed: crashloop.service"},
			before:  func(t *testing.T) { sandboxtest.FailUnit(t, s, "crashloop.service") },
			check: func(t *testing.T, top string) {
				s.Run(t, "systemctl", "stop", "crashloop.service")
				s.Run(t, "systemctl", "reset-failed")
			},
		},
		{
			name: "root only", variant: nixtest.Good, action: "dry-activate", wantExit: 1, wantOut: []string{"must be run as root"},
			before: func(t *testing.T) { asUser = "nobody" },
			check:  func(t *testing.T, top string) { asUser = "" },
		},
		{
			name: "fail-activation marker fails any switch", variant: nixtest.Good, wantExit: 2,
			before: func(t *testing.T) {
				s.Run(t, "sh", "-c", "mkdir -p /etc/panther-lab && touch "+nixtest.FailActivationFile)
			},
			check: func(t *testing.T, top string) { s.Run(t, "rm", nixtest.FailActivationFile) },
		},
		{
			name: "restart-agent restarts the agent and completes", variant: nixtest.RestartAgent,
			before:  func(t *testing.T) { pids.agent = show(t, "panther-agent.service", "InvocationID") },
			wantOut: []string{"restarting panther-agent.service"},
			check: func(t *testing.T, top string) {
				deadline := time.Now().Add(10 * time.Second)
				for show(t, "panther-agent.service", "InvocationID") == pids.agent {
					if time.Now().After(deadline) {
						t.Fatalf("panther-agent.service was not restarted")
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
		},
		{
			name: "cut-network takes the links down", variant: nixtest.CutNetwork,
			check: func(t *testing.T, top string) {
				links := linksUp(t)
				if len(links) == 0 {
					t.Fatal("no links besides lo in the sandbox")
				}
				for name, up := range links {
					if up {
						t.Errorf("link %s still up", name)
					}
				}
			},
		},
		{
			name: "cut-control cuts TCP to the agent's control server only", variant: nixtest.CutControl,
			before: func(t *testing.T) {
				s.Run(t, "sh", "-c", `mkdir -p /etc/panther && echo '{"hostName": "lab", "controlUrl": "http://192.0.2.10:4443"}' >/etc/panther/agent.json`)
			},
			wantOut: []string{"cutting TCP to the coordination server 192.0.2.10:4443"},
			check: func(t *testing.T, top string) {
				rules := s.Run(t, "ip", "rule", "show", "pref", "4242")
				if !strings.Contains(rules, "to 192.0.2.10 ipproto tcp dport 4443 blackhole") {
					t.Errorf("no blackhole rule for control: %q", rules)
				}
				// Nothing else: other ports of that address still route.
				if r := s.Run(t, "ip", "route", "get", "192.0.2.10", "ipproto", "udp", "dport", "4443"); strings.Contains(r, "blackhole") {
					t.Errorf("UDP to control's address is cut too: %q", r)
				}
				// A blackhole route: the lookup itself fails (EINVAL).
				if r, err := s.Exec(t.Context(), "ip", "route", "get", "192.0.2.10", "ipproto", "tcp", "dport", "4443"); err == nil {
					t.Errorf("TCP to control still routes: %s", r)
				}
			},
		},
		{
			name: "good brings links and routes back", variant: nixtest.Good,
			check: func(t *testing.T, top string) {
				if rules := s.Run(t, "ip", "rule", "show", "pref", "4242"); strings.TrimSpace(rules) != "" {
					t.Errorf("the control rule is still there: %q", rules)
				}
				for name, up := range linksUp(t) {
					if !up {
						t.Errorf("link %s still down", name)
					}
				}
				if routes := s.Run(t, "ip", "route", "show", "default"); !strings.Contains(routes, "default via") {
					t.Errorf("default route not restored: %q", routes)
				}
			},
		},
		{name: "dry-fail", variant: nixtest.DryFail, action: "dry-activate", wantExit: 1, wantOut: []string{"dry activation failed"}},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			top := tops[st.variant]
			action := st.action
			if action == "" {
				action = "switch"
			}
			if st.before != nil {
				st.before(t)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			start := time.Now()
			argv := []string{top + "/bin/switch-to-configuration", action}
			if asUser != "" {
				argv = append([]string{"setpriv", "--reuid=" + asUser, "--regid=nogroup", "--clear-groups"}, argv...)
			}
			cmd := s.Command(ctx, argv...)
			cmd.Env = append(cmd.Env, st.env...)
			out, err := cmd.CombinedOutput()
			t.Logf("%s %s took %v", st.variant, action, time.Since(start).Round(time.Millisecond))
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if code != st.wantExit {
				t.Errorf("exit %d, want %d\n%s", code, st.wantExit, out)
			}
			for _, w := range st.wantOut {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range st.notOut {
				if strings.Contains(string(out), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			if st.check != nil {
				st.check(t, top)
			}
		}) {
			t.Logf("journal:\n%s", s.Journal(t.Context(), ""))
			return // later steps build on this one
		}
	}
}
