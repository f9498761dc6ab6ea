// Package fleetdiff aggregates what a deployment would change on each host
// of a batch into one view for the operator's single prompt: which packages
// change (old → new versions and how many hosts get each), the closure size
// delta, the units stopped, restarted, reloaded and started, and the hosts
// that need a reboot. It is pure: it knows neither gRPC nor the terminal;
// the caller converts each host's dry-activation summary into a Summary and
// renders the Diff as text (Render) or JSON (encoding/json on Diff).
package fleetdiff

import (
	"cmp"
	"slices"
	"strings"
)

// Summary is what one host's dry activation says would change.
type Summary struct {
	// CurrentPath and NewPath are the running and the new system's store
	// paths; equal when the host runs the new system already.
	CurrentPath, NewPath string
	// CurrentVersion and NewVersion are the systems' nixos-version.
	CurrentVersion, NewVersion string
	// Changes are the lines of `nix store diff-closures` between them.
	Changes []Change
	// CurrentClosureSize and NewClosureSize are closure sizes in bytes; 0 =
	// unknown (an old agent, or a first deploy without a running system).
	CurrentClosureSize, NewClosureSize int64
	// The units dry-activate would stop, restart, reload and start.
	Stop, Restart, Reload, Start []string
	// RestartSystemd: dry-activate would restart systemd (PID 1).
	RestartSystemd bool
	// RebootRequired lists what differs from the booted system (kernel,
	// initrd, kernel-modules): it takes effect after a reboot.
	RebootRequired []string
	// NotActivatable says why a switch can only set the boot default ("" =
	// it can be activated live): the host must be rebooted to run it.
	NotActivatable string
}

// Change is one package whose versions or size differ between the systems.
type Change struct {
	Name string
	// Old and New are the versions as nix prints them ("1.2" or "1.2, 1.3"
	// when the closure holds several); "" = absent on that side.
	Old, New string
	// SizeBytes is the size change in bytes (0 when nix printed none).
	SizeBytes int64
}

// Host is one host of the batch and its summary.
type Host struct {
	Name    string
	Summary Summary
}

// Diff is the aggregated change across a batch. Every host list is sorted.
type Diff struct {
	// Hosts is how many hosts the diff covers.
	Hosts int `json:"hosts"`
	// Unchanged are the hosts that run the new system already.
	Unchanged []string `json:"unchanged,omitempty"`
	// Packages are the package changes, one per (name, old, new), sorted by
	// name, then by how many hosts get it (most first).
	Packages []Package `json:"packages,omitempty"`
	// Closure is the closure size change summed over the hosts.
	Closure Closure `json:"closure"`
	// Units are the unit actions, one per (action, unit), in the order
	// stop, restart, reload, start, then by unit name.
	Units []Unit `json:"units,omitempty"`
	// RestartSystemd are the hosts whose systemd (PID 1) would restart.
	RestartSystemd []string `json:"restartSystemd,omitempty"`
	// Reboot are the hosts that need a reboot, grouped by why.
	Reboot []Reboot `json:"reboot,omitempty"`
	// PerHost is each host's own view, in host name order; only with
	// Options.PerHost (--diff full).
	PerHost []HostDiff `json:"perHost,omitempty"`
}

// Package is one package change shared by some hosts.
type Package struct {
	Name string `json:"name"`
	// Old and New are the versions ("" = absent: New only means added,
	// Old only means removed; neither means the size changed alone).
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Hosts get this change.
	Hosts []string `json:"hosts"`
	// SizeMin and SizeMax are the smallest and largest size change in bytes
	// on one host; SizeTotal their sum over the hosts.
	SizeMin   int64 `json:"sizeMin"`
	SizeMax   int64 `json:"sizeMax"`
	SizeTotal int64 `json:"sizeTotal"`
}

// Closure is the closure size change across hosts.
type Closure struct {
	// Known counts the hosts whose both closure sizes are known; Delta is
	// the sum of (new - current) over them, Min and Max the extremes.
	Known int   `json:"known"`
	Delta int64 `json:"delta"`
	Min   int64 `json:"min"`
	Max   int64 `json:"max"`
	// Unknown are the hosts whose closure size change is not known.
	Unknown []string `json:"unknown,omitempty"`
}

// Unit actions, in the order dry-activate applies them.
const (
	ActionStop    = "stop"
	ActionRestart = "restart"
	ActionReload  = "reload"
	ActionStart   = "start"
)

var actionOrder = []string{ActionStop, ActionRestart, ActionReload, ActionStart}

// Unit is one unit action shared by some hosts.
type Unit struct {
	Action string   `json:"action"`
	Unit   string   `json:"unit"`
	Hosts  []string `json:"hosts"`
}

// Reboot is a group of hosts that need a reboot for the same reason.
type Reboot struct {
	// What differs from the booted system (e.g. "kernel, initrd"), or why
	// the system cannot be activated live.
	Why   string   `json:"why"`
	Hosts []string `json:"hosts"`
	// BootOnly: the switch only sets the boot default (the system cannot
	// be activated live); otherwise it is activated and the listed parts
	// take effect at the next boot.
	BootOnly bool `json:"bootOnly,omitempty"`
}

// HostDiff is one host's change (the --diff full detail).
type HostDiff struct {
	Name           string   `json:"name"`
	CurrentVersion string   `json:"currentVersion,omitempty"`
	NewVersion     string   `json:"newVersion,omitempty"`
	Unchanged      bool     `json:"unchanged,omitempty"`
	Changes        []Change `json:"changes,omitempty"`
	// ClosureDelta is new - current closure size; valid if ClosureKnown.
	ClosureDelta int64    `json:"closureDelta"`
	ClosureKnown bool     `json:"closureKnown"`
	Stop         []string `json:"stop,omitempty"`
	Restart      []string `json:"restart,omitempty"`
	Reload       []string `json:"reload,omitempty"`
	Start        []string `json:"start,omitempty"`
	Reboot       string   `json:"reboot,omitempty"`
}

// Options tune Aggregate.
type Options struct {
	// PerHost adds each host's own view (Diff.PerHost). Default: off.
	PerHost bool
}

// Aggregate folds the hosts' summaries into one Diff. Hosts are taken in
// any order; a host named twice counts twice.
func Aggregate(hosts []Host, opts Options) Diff {
	d := Diff{Hosts: len(hosts)}
	type pkey struct{ name, old, new string }
	pkgs := map[pkey]*Package{}
	type ukey struct{ action, unit string }
	units := map[ukey]*Unit{}
	type rkey struct {
		why      string
		bootOnly bool
	}
	reboots := map[rkey]*Reboot{}
	first := true
	for _, h := range hosts {
		s := h.Summary
		if s.CurrentPath != "" && s.CurrentPath == s.NewPath {
			d.Unchanged = append(d.Unchanged, h.Name)
		}
		for _, c := range s.Changes {
			c.Name = systemName(c.Name, h.Name)
			k := pkey{c.Name, c.Old, c.New}
			p := pkgs[k]
			if p == nil {
				p = &Package{Name: c.Name, Old: c.Old, New: c.New, SizeMin: c.SizeBytes, SizeMax: c.SizeBytes}
				pkgs[k] = p
			}
			p.Hosts = append(p.Hosts, h.Name)
			p.SizeMin = min(p.SizeMin, c.SizeBytes)
			p.SizeMax = max(p.SizeMax, c.SizeBytes)
			p.SizeTotal += c.SizeBytes
		}
		delta, known := closureDelta(s)
		if known {
			if first {
				d.Closure.Min, d.Closure.Max = delta, delta
				first = false
			}
			d.Closure.Known++
			d.Closure.Delta += delta
			d.Closure.Min = min(d.Closure.Min, delta)
			d.Closure.Max = max(d.Closure.Max, delta)
		} else {
			d.Closure.Unknown = append(d.Closure.Unknown, h.Name)
		}
		for i, list := range [][]string{s.Stop, s.Restart, s.Reload, s.Start} {
			for _, u := range uniq(list) {
				k := ukey{actionOrder[i], u}
				e := units[k]
				if e == nil {
					e = &Unit{Action: k.action, Unit: u}
					units[k] = e
				}
				e.Hosts = append(e.Hosts, h.Name)
			}
		}
		if s.RestartSystemd {
			d.RestartSystemd = append(d.RestartSystemd, h.Name)
		}
		if why, bootOnly := rebootWhy(s); why != "" {
			k := rkey{why, bootOnly}
			r := reboots[k]
			if r == nil {
				r = &Reboot{Why: why, BootOnly: bootOnly}
				reboots[k] = r
			}
			r.Hosts = append(r.Hosts, h.Name)
		}
		if opts.PerHost {
			d.PerHost = append(d.PerHost, HostDiff{
				Name: h.Name, CurrentVersion: s.CurrentVersion, NewVersion: s.NewVersion,
				Unchanged: s.CurrentPath != "" && s.CurrentPath == s.NewPath,
				Changes:   sortedChanges(s.Changes), ClosureDelta: delta, ClosureKnown: known,
				Stop: uniq(s.Stop), Restart: uniq(s.Restart), Reload: uniq(s.Reload), Start: uniq(s.Start),
				Reboot: rebootText(s),
			})
		}
	}
	if d.Closure.Known == 0 {
		d.Closure.Min, d.Closure.Max = 0, 0
	}
	slices.Sort(d.Unchanged)
	slices.Sort(d.Closure.Unknown)
	slices.Sort(d.RestartSystemd)
	for _, p := range pkgs {
		slices.Sort(p.Hosts)
		d.Packages = append(d.Packages, *p)
	}
	slices.SortFunc(d.Packages, func(a, b Package) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(len(b.Hosts), len(a.Hosts)),
			cmp.Compare(a.Old, b.Old), cmp.Compare(a.New, b.New))
	})
	for _, u := range units {
		slices.Sort(u.Hosts)
		d.Units = append(d.Units, *u)
	}
	slices.SortFunc(d.Units, func(a, b Unit) int {
		return cmp.Or(cmp.Compare(slices.Index(actionOrder, a.Action), slices.Index(actionOrder, b.Action)),
			cmp.Compare(a.Unit, b.Unit))
	})
	for _, r := range reboots {
		slices.Sort(r.Hosts)
		d.Reboot = append(d.Reboot, *r)
	}
	slices.SortFunc(d.Reboot, func(a, b Reboot) int {
		return cmp.Or(cmp.Compare(len(b.Hosts), len(a.Hosts)), cmp.Compare(a.Why, b.Why))
	})
	slices.SortFunc(d.PerHost, func(a, b HostDiff) int { return cmp.Compare(a.Name, b.Name) })
	return d
}

// SystemPackage is the name a host's own system toplevel
// ("nixos-system-<host>-<version>", which diff-closures names
// "nixos-system-<host>") gets in the diff, so that its change adds up
// across hosts like any package's.
const SystemPackage = "nixos-system"

func systemName(name, host string) string {
	if name == SystemPackage+"-"+host {
		return SystemPackage
	}
	return name
}

// closureDelta is new - current closure size, if both are known. A host
// that runs the new system already changes by 0.
func closureDelta(s Summary) (int64, bool) {
	if s.CurrentPath != "" && s.CurrentPath == s.NewPath {
		return 0, true
	}
	if s.CurrentClosureSize <= 0 || s.NewClosureSize <= 0 {
		return 0, false
	}
	return s.NewClosureSize - s.CurrentClosureSize, true
}

// rebootWhy says why a host needs a reboot ("" = it does not) and whether
// the switch only sets the boot default.
func rebootWhy(s Summary) (string, bool) {
	if s.NotActivatable != "" {
		return "cannot be activated live: " + s.NotActivatable, true
	}
	if len(s.RebootRequired) > 0 {
		return "new " + strings.Join(s.RebootRequired, ", "), false
	}
	return "", false
}

func rebootText(s Summary) string {
	why, _ := rebootWhy(s)
	return why
}

func sortedChanges(cs []Change) []Change {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// uniq returns the distinct names of list, sorted.
func uniq(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}
