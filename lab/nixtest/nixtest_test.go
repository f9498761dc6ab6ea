package nixtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/nixtest"
)

func TestVariants(t *testing.T) {
	n := nixtest.Nix(t)
	hosts := map[string]string{}
	for _, v := range nixtest.Variants() {
		hosts["h-"+v] = v
	}
	dir := nixtest.Flake(t, hosts)
	ref := nixtest.Ref(dir)
	ctx := t.Context()

	got, err := n.Hosts(ctx, ref)
	if err != nil {
		t.Fatalf("Hosts: %v", err)
	}
	if len(got) != len(hosts) {
		t.Fatalf("Hosts = %q, want one per variant", got)
	}

	tests := []struct {
		variant      string
		wantErr      string // substring of the build error's summary
		wantLine     string // a build log line streamed to onLine
		wantWarnings []string
	}{
		{variant: nixtest.Good},
		{variant: nixtest.GoodV2},
		{variant: nixtest.BuildFail, wantErr: "builder for", wantLine: "lab-broken.c:3:1: error"},
		{variant: nixtest.EvalError, wantErr: "evaluation of h-eval-error fails on purpose"},
		{variant: nixtest.Warnings, wantWarnings: []string{
			"lab warning one: services.lab-hello uses a deprecated option",
			"lab warning two: networking.lab is not set",
		}, wantLine: "trace: warning: lab warning one"},
		{variant: nixtest.DryFail},
		{variant: nixtest.UnitFail},
		{variant: nixtest.ActivationFail},
		{variant: nixtest.RebootRequired},
		{variant: nixtest.NewKernel},
		{variant: nixtest.Inhibited},
		{variant: nixtest.Specialised},
		{variant: nixtest.HangSwitch},
		{variant: nixtest.NoAgent},
		{variant: nixtest.NoRestart},
		{variant: nixtest.StopsAgent},
		{variant: nixtest.RestartAgent},
		{variant: nixtest.CutNetwork},
		{variant: nixtest.CutControl},
		{variant: nixtest.WebOK},
		{variant: nixtest.WebBroken},
	}
	if len(tests) != len(nixtest.Variants()) {
		t.Fatalf("%d cases for %d variants", len(tests), len(nixtest.Variants()))
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			host := "h-" + tt.variant
			warnings, err := n.Warnings(ctx, ref, host)
			if err != nil {
				t.Fatalf("Warnings: %v", err)
			}
			if !slices.Equal(warnings, tt.wantWarnings) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarnings)
			}

			installable, err := nix.Toplevel(ref, host)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			start := time.Now()
			out, err := n.Build(ctx, installable, func(l string) { lines = append(lines, l) })
			t.Logf("build took %v", time.Since(start).Round(time.Millisecond))
			if tt.wantLine != "" && !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, tt.wantLine) }) {
				t.Errorf("no streamed line contains %q: %q", tt.wantLine, lines)
			}
			if tt.wantErr != "" {
				var ne *nix.Error
				if !errors.As(err, &ne) {
					t.Fatalf("build error %v, want a *nix.Error", err)
				}
				if ne.ExitCode != 1 || !strings.Contains(ne.Summary(), tt.wantErr) {
					t.Errorf("exit %d, summary %q; want 1 and %q", ne.ExitCode, ne.Summary(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			checkToplevel(t, out, tt.variant)
		})
	}
}

// checkToplevel checks the files every variant's toplevel has.
func checkToplevel(t *testing.T, out, variant string) {
	t.Helper()
	if version, err := nix.NixOSVersion(out); err != nil || version != nixtest.Version(variant) {
		t.Errorf("nixos-version = %q, %v; want %q", version, err, nixtest.Version(variant))
	}
	entries, err := os.ReadDir(filepath.Join(out, "etc/systemd/system"))
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range entries {
		units = append(units, e.Name())
	}
	if !slices.Equal(units, nixtest.Units(variant)) {
		t.Errorf("units %q, want %q", units, nixtest.Units(variant))
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join(out, "etc/systemd/system", u))
		if err != nil || !strings.Contains(string(b), "[Service]") || strings.Contains(string(b), "@out@") {
			t.Errorf("unit %s: %v\n%s", u, err, b)
		}
	}
	for _, exe := range []string{"bin/switch-to-configuration", "activate", "init"} {
		info, err := os.Stat(filepath.Join(out, exe))
		if err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("%s not executable: %v %v", exe, info, err)
		}
	}
	kernel := nixtest.KernelVersion
	if variant == nixtest.NewKernel {
		kernel = nixtest.NewKernelVersion
	}
	for file, want := range map[string]string{
		"init-interface-version": "systemd\n",
		"kernel":                 "panther lab kernel " + kernel + "\n",
		"initrd":                 "panther lab initrd " + kernel + "\n",
		"configuration-name":     "",
	} {
		if variant == nixtest.RebootRequired && file == "init-interface-version" {
			want = "systemd-lab-2\n"
		}
		if b, err := os.ReadFile(filepath.Join(out, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "kernel-modules/lib/modules", kernel)); err != nil {
		t.Errorf("kernel-modules: %v", err)
	}
	spec := filepath.Join(out, "specialisation", nixtest.SpecialisationName)
	if variant != nixtest.Specialised {
		if _, err := os.Stat(spec); err == nil {
			t.Errorf("%s has a specialisation", variant)
		}
		return
	}
	if b, err := os.ReadFile(filepath.Join(spec, "configuration-name")); err != nil || string(b) != nixtest.SpecialisationName {
		t.Errorf("specialisation configuration-name = %q, %v", b, err)
	}
	for _, f := range []string{"nixos-version", "bin/switch-to-configuration", "activate", "kernel", "etc/systemd/system/" + nixtest.ExtraUnit} {
		if _, err := os.Stat(filepath.Join(spec, f)); err != nil {
			t.Errorf("specialisation: %v", err)
		}
	}
}

func TestRewritingHostsChangesOutPath(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, map[string]string{"alpha": nixtest.Good})
	installable, err := nix.Toplevel(nixtest.Ref(dir), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	good, err := n.Build(t.Context(), installable, nil)
	if err != nil {
		t.Fatalf("build good: %v", err)
	}
	nixtest.WriteHosts(t, dir, map[string]string{"alpha": nixtest.GoodV2})
	v2, err := n.Build(t.Context(), installable, nil)
	if err != nil {
		t.Fatalf("build good-v2: %v", err)
	}
	if good == v2 {
		t.Fatalf("rewriting hosts.json did not change the out path %s", good)
	}
	if v, _ := nix.NixOSVersion(v2); v != nixtest.Version(nixtest.GoodV2) {
		t.Errorf("version after rewrite = %q", v)
	}
	// Only lab-hello differs between the two.
	for _, u := range []string{nixtest.HelloUnit, nixtest.GreeterUnit} {
		a, _ := os.ReadFile(filepath.Join(good, "etc/systemd/system", u))
		b, _ := os.ReadFile(filepath.Join(v2, "etc/systemd/system", u))
		if changed := string(a) != string(b); changed != (u == nixtest.HelloUnit) {
			t.Errorf("%s changed = %v", u, changed)
		}
	}
}

func TestDefaultHosts(t *testing.T) {
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, nil)
	hosts, err := n.Hosts(context.Background(), nixtest.Ref(dir))
	if err != nil || !slices.Equal(hosts, []string{"alpha", "beta"}) {
		t.Errorf("default hosts = %q, %v", hosts, err)
	}
}

func TestDryActivateWithoutRunningSystem(t *testing.T) {
	// Read-only and safe outside a sandbox: with no /run/current-system
	// every unit would be started.
	if _, err := os.Lstat(nixtest.CurrentSystem); err == nil {
		t.Skip("this machine has a /run/current-system; the expectation below assumes none")
	}
	n := nixtest.Nix(t)
	dir := nixtest.Flake(t, map[string]string{"a": nixtest.Good, "b": nixtest.DryFail})
	for _, tt := range []struct {
		host, want string
		wantExit   bool
	}{
		{host: "a", want: "would start the following units: lab-greeter.service, lab-hello.service"},
		{host: "b", want: "error: dry activation failed", wantExit: true},
	} {
		installable, _ := nix.Toplevel(nixtest.Ref(dir), tt.host)
		out, err := n.Build(t.Context(), installable, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runScript(t, out, "dry-activate")
		if (err != nil) != tt.wantExit || !strings.Contains(got, tt.want) {
			t.Errorf("%s dry-activate: %v\n%s\nwant %q", tt.host, err, got, tt.want)
		}
	}
}
