package fleetdiff

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const (
	kib = 1024
	mib = 1024 * kib
	gib = 1024 * mib
)

// web is a host that gets linux 6.18.17 and restarts nginx.
func web(name string) Host {
	return Host{Name: name, Summary: Summary{
		CurrentPath: "/nix/store/old-" + name, NewPath: "/nix/store/new",
		CurrentVersion: "26.05.1", NewVersion: "26.05.2",
		Changes: []Change{
			{Name: "linux", Old: "6.18.16", New: "6.18.17", SizeBytes: 2*mib + 512*kib},
			{Name: "glibc", SizeBytes: 16 * kib},
		},
		CurrentClosureSize: 1 * gib, NewClosureSize: 1*gib + 2*mib + 528*kib,
		Restart:        []string{"nginx.service", "sshd.service"},
		RebootRequired: []string{"kernel", "initrd"},
	}}
}

func TestTwelveHostsGetLinux(t *testing.T) {
	var hosts []Host
	for i := range 12 {
		hosts = append(hosts, web(fmt.Sprintf("web%02d", i+1)))
	}
	d := Aggregate(hosts, Options{})
	if d.Hosts != 12 || len(d.Packages) != 2 {
		t.Fatalf("diff = %+v", d)
	}
	linux := d.Packages[1]
	if linux.Name != "linux" || len(linux.Hosts) != 12 || linux.SizeMin != 2*mib+512*kib || linux.SizeTotal != 12*(2*mib+512*kib) {
		t.Errorf("linux = %+v", linux)
	}
	if d.Closure.Known != 12 || d.Closure.Delta != 12*(2*mib+528*kib) || len(d.Closure.Unknown) != 0 {
		t.Errorf("closure = %+v", d.Closure)
	}
	got := strings.Join(Render(d), "\n")
	for _, want := range []string{
		"fleet diff: 12 hosts",
		"closure: +30.2 MiB in total, +2.5 MiB per host",
		"all 12 hosts get linux 6.18.17 (was 6.18.16), +2.5 MiB each",
		"all 12 hosts: glibc changes size, +16.0 KiB each",
		"all 12 hosts restart: nginx.service, sshd.service",
		"all 12 hosts need a reboot afterwards (new kernel, initrd)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("render lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "web01") {
		t.Errorf("a line about every host names them:\n%s", got)
	}
}

// A mixed batch: the same package from different old versions, a package
// new on one host and dropped on another, different closure deltas, unit
// actions on some hosts, a host that cannot be activated live, a host that
// runs the new system already and one whose sizes are unknown.
func TestMixedBatch(t *testing.T) {
	a := web("a")
	b := web("b")
	b.Summary.Changes = []Change{
		{Name: "linux", Old: "6.18.15", New: "6.18.17", SizeBytes: 3 * mib},
		{Name: "hello", New: "2.12.1", SizeBytes: 100 * kib},
		{Name: "foo", Old: "1.0", SizeBytes: -120 * kib},
	}
	b.Summary.NewClosureSize = 1*gib + 1*mib
	b.Summary.Restart = []string{"nginx.service"}
	b.Summary.Stop = []string{"old.service", "old.service"}
	b.Summary.RebootRequired = nil
	b.Summary.NotActivatable = "dry-activate exited 100"
	b.Summary.RestartSystemd = true
	c := Host{Name: "c", Summary: Summary{CurrentPath: "/nix/store/new", NewPath: "/nix/store/new"}}
	dd := web("d")
	dd.Summary.CurrentClosureSize = 0
	hosts := []Host{dd, c, b, a}

	d := Aggregate(hosts, Options{})
	wantPkgs := []Package{
		{Name: "foo", Old: "1.0", Hosts: []string{"b"}, SizeMin: -120 * kib, SizeMax: -120 * kib, SizeTotal: -120 * kib},
		{Name: "glibc", Hosts: []string{"a", "d"}, SizeMin: 16 * kib, SizeMax: 16 * kib, SizeTotal: 32 * kib},
		{Name: "hello", New: "2.12.1", Hosts: []string{"b"}, SizeMin: 100 * kib, SizeMax: 100 * kib, SizeTotal: 100 * kib},
		{Name: "linux", Old: "6.18.16", New: "6.18.17", Hosts: []string{"a", "d"}, SizeMin: 2*mib + 512*kib, SizeMax: 2*mib + 512*kib, SizeTotal: 5 * mib},
		{Name: "linux", Old: "6.18.15", New: "6.18.17", Hosts: []string{"b"}, SizeMin: 3 * mib, SizeMax: 3 * mib, SizeTotal: 3 * mib},
	}
	if !reflect.DeepEqual(d.Packages, wantPkgs) {
		t.Errorf("packages =\n%+v\nwant\n%+v", d.Packages, wantPkgs)
	}
	wantClosure := Closure{Known: 3, Delta: 2*mib + 528*kib + 1*mib, Min: 0, Max: 2*mib + 528*kib, Unknown: []string{"d"}}
	if !reflect.DeepEqual(d.Closure, wantClosure) {
		t.Errorf("closure = %+v, want %+v", d.Closure, wantClosure)
	}
	wantUnits := []Unit{
		{Action: ActionStop, Unit: "old.service", Hosts: []string{"b"}},
		{Action: ActionRestart, Unit: "nginx.service", Hosts: []string{"a", "b", "d"}},
		{Action: ActionRestart, Unit: "sshd.service", Hosts: []string{"a", "d"}},
	}
	if !reflect.DeepEqual(d.Units, wantUnits) {
		t.Errorf("units = %+v, want %+v", d.Units, wantUnits)
	}
	wantReboot := []Reboot{
		{Why: "new kernel, initrd", Hosts: []string{"a", "d"}},
		{Why: "cannot be activated live: dry-activate exited 100", Hosts: []string{"b"}, BootOnly: true},
	}
	if !reflect.DeepEqual(d.Reboot, wantReboot) {
		t.Errorf("reboot = %+v, want %+v", d.Reboot, wantReboot)
	}
	if !reflect.DeepEqual(d.Unchanged, []string{"c"}) || !reflect.DeepEqual(d.RestartSystemd, []string{"b"}) {
		t.Errorf("unchanged = %q, restart systemd = %q", d.Unchanged, d.RestartSystemd)
	}

	got := Render(d)
	want := []string{
		"fleet diff: 4 hosts",
		"  closure: +3.5 MiB in total, +0 B to +2.5 MiB per host; unknown on 1 host (d)",
		"  1 host (b) drops foo 1.0, -120.0 KiB",
		"  2 hosts (a, d): glibc changes size, +16.0 KiB each",
		"  1 host (b) gets hello 2.12.1 (new), +100.0 KiB",
		"  2 hosts (a, d) get linux 6.18.17 (was 6.18.16), +2.5 MiB each",
		"  1 host (b) gets linux 6.18.17 (was 6.18.15), +3.0 MiB",
		"  1 host (b) stops: old.service",
		"  3 hosts (a, b, d) restart: nginx.service",
		"  2 hosts (a, d) restart: sshd.service",
		"  1 host (b) restarts systemd",
		"  2 hosts (a, d) need a reboot afterwards (new kernel, initrd)",
		"  1 host (b) needs a reboot to run the new system (dry-activate exited 100): the switch only sets the boot default",
		"  1 host (c) runs the new system already",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("render =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Each host's own toplevel (nixos-system-<host>) counts as one package.
func TestSystemPackage(t *testing.T) {
	var hosts []Host
	for _, n := range []string{"web1", "web2", "db1"} {
		h := web(n)
		h.Summary.Changes = append(h.Summary.Changes, Change{Name: "nixos-system-" + n, Old: "26.05.1", New: "26.05.2"})
		hosts = append(hosts, h)
	}
	hosts[2].Summary.Changes = append(hosts[2].Summary.Changes, Change{Name: "nixos-system-web1", Old: "1", New: "2"})
	got := strings.Join(Render(Aggregate(hosts, Options{})), "\n")
	for _, want := range []string{"all 3 hosts get nixos-system 26.05.2 (was 26.05.1)", "1 host (db1) gets nixos-system-web1 2 (was 1)"} {
		if !strings.Contains(got, want) {
			t.Errorf("render lacks %q:\n%s", want, got)
		}
	}
}

func TestPerHost(t *testing.T) {
	a := web("a")
	c := Host{Name: "c", Summary: Summary{CurrentPath: "/nix/store/new", NewPath: "/nix/store/new", CurrentVersion: "26.05.2", NewVersion: "26.05.2"}}
	d := Aggregate([]Host{c, a}, Options{PerHost: true})
	if len(d.PerHost) != 2 || d.PerHost[0].Name != "a" || d.PerHost[1].Name != "c" {
		t.Fatalf("per host = %+v", d.PerHost)
	}
	got := strings.Join(Render(d), "\n")
	want := `a: 26.05.1 → 26.05.2, closure +2.5 MiB
    glibc, +16.0 KiB
    linux 6.18.16 → 6.18.17, +2.5 MiB
    restart: nginx.service, sshd.service
    reboot: new kernel, initrd
c: 26.05.2 → 26.05.2, runs the new system already`
	if !strings.HasSuffix(got, want) {
		t.Errorf("render =\n%s\nwant it to end with\n%s", got, want)
	}
	if d := Aggregate([]Host{a}, Options{}); d.PerHost != nil {
		t.Errorf("per host without the option: %+v", d.PerHost)
	}
}

func TestManyHostsNamesAreCut(t *testing.T) {
	var hosts []Host
	for i := range 8 {
		hosts = append(hosts, web(fmt.Sprintf("h%d", i)))
	}
	odd := web("z")
	odd.Summary.Changes = nil
	odd.Summary.Restart = nil
	hosts = append(hosts, odd)
	got := strings.Join(Render(Aggregate(hosts, Options{})), "\n")
	want := "8 hosts (h0, h1, h2, h3, h4 and 3 more) get linux 6.18.17 (was 6.18.16), +2.5 MiB each"
	if !strings.Contains(got, want) {
		t.Errorf("render lacks %q:\n%s", want, got)
	}
}

func TestEmptyAndOneHost(t *testing.T) {
	if got := Render(Aggregate(nil, Options{})); !reflect.DeepEqual(got, []string{"fleet diff: 0 hosts", "  no package changes"}) {
		t.Errorf("empty = %q", got)
	}
	got := Render(Aggregate([]Host{web("solo")}, Options{}))
	want := []string{
		"fleet diff: 1 host",
		"  closure: +2.5 MiB",
		"  solo: glibc changes size, +16.0 KiB",
		"  solo gets linux 6.18.17 (was 6.18.16), +2.5 MiB",
		"  solo restarts: nginx.service, sshd.service",
		"  solo needs a reboot afterwards (new kernel, initrd)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("one host =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A first deploy: no running system, sizes unknown.
	first := Host{Name: "new", Summary: Summary{NewPath: "/nix/store/x", NewClosureSize: 5 * mib, Start: []string{"nginx.service"}}}
	d := Aggregate([]Host{first}, Options{})
	if d.Closure.Known != 0 || len(d.Unchanged) != 0 {
		t.Errorf("first deploy: %+v", d)
	}
	if got := Render(d)[1]; got != "  closure: unknown on new" {
		t.Errorf("first deploy closure line = %q", got)
	}
}

func TestJSON(t *testing.T) {
	d := Aggregate([]Host{web("a"), web("b")}, Options{})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Diff
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("round trip:\n%+v\n%+v", back, d)
	}
	for _, want := range []string{
		`"hosts":2`,
		`{"name":"linux","old":"6.18.16","new":"6.18.17","hosts":["a","b"],"sizeMin":2621440,"sizeMax":2621440,"sizeTotal":5242880}`,
		`"closure":{"known":2,"delta":5275648,"min":2637824,"max":2637824}`,
		`{"action":"restart","unit":"nginx.service","hosts":["a","b"]}`,
		`"reboot":[{"why":"new kernel, initrd","hosts":["a","b"]}]`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("json lacks %s:\n%s", want, b)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want string
	}{
		{0, "+0 B"}, {1023, "+1023 B"}, {-1024, "-1.0 KiB"}, {16 * kib, "+16.0 KiB"},
		{2*mib + 512*kib, "+2.5 MiB"}, {-3 * gib, "-3.0 GiB"}, {5 * 1024 * gib, "+5.0 TiB"},
	} {
		if got := Size(tt.in); got != tt.want {
			t.Errorf("Size(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
