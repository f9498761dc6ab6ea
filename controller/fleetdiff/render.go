package fleetdiff

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxNames is how many host names a line of the summary lists before it
// says "and N more"; a line about every host of the batch names none.
const MaxNames = 5

// Render returns the diff as lines for people, without trailing newlines:
// a heading, the closure size change, one line per package change, the
// unit actions grouped by the hosts they apply to, the hosts that need a
// reboot, and (when the diff has them) each host's own view.
func Render(d Diff) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	add("fleet diff: %s", countHosts(d.Hosts))
	if line := closureLine(d); line != "" {
		add("  closure: %s", line)
	}
	if len(d.Packages) == 0 {
		add("  no package changes")
	}
	for _, p := range d.Packages {
		add("  %s", packageLine(d, p))
	}
	for _, g := range groupUnits(d.Units) {
		add("  %s %s: %s", who(d, g.hosts), verb(g.action, len(g.hosts)), strings.Join(g.units, ", "))
	}
	if len(d.RestartSystemd) > 0 {
		add("  %s %s systemd", who(d, d.RestartSystemd), verb("restart", len(d.RestartSystemd)))
	}
	for _, r := range d.Reboot {
		if r.BootOnly {
			add("  %s %s (%s): the switch only sets the boot default", who(d, r.Hosts), needs(len(r.Hosts), "a reboot to run the new system"), strings.TrimPrefix(r.Why, "cannot be activated live: "))
		} else {
			add("  %s %s (%s)", who(d, r.Hosts), needs(len(r.Hosts), "a reboot afterwards"), r.Why)
		}
	}
	if len(d.Unchanged) > 0 {
		add("  %s %s the new system already", who(d, d.Unchanged), pick(len(d.Unchanged), "runs", "run"))
	}
	for _, h := range d.PerHost {
		out = append(out, hostLines(h)...)
	}
	return out
}

func closureLine(d Diff) string {
	c := d.Closure
	var parts []string
	switch {
	case c.Known == 0:
	case c.Known == 1:
		parts = append(parts, Size(c.Delta))
	case c.Min == c.Max:
		parts = append(parts, fmt.Sprintf("%s in total, %s per host", Size(c.Delta), Size(c.Min)))
	default:
		parts = append(parts, fmt.Sprintf("%s in total, %s to %s per host", Size(c.Delta), Size(c.Min), Size(c.Max)))
	}
	if len(c.Unknown) > 0 {
		parts = append(parts, fmt.Sprintf("unknown on %s", who(d, c.Unknown)))
	}
	return strings.Join(parts, "; ")
}

// packageLine is e.g. "12 hosts get linux 6.18.17 (was 6.18.16), +2.5 MiB each".
func packageLine(d Diff, p Package) string {
	n := len(p.Hosts)
	var s string
	switch {
	case p.Old == "" && p.New == "":
		s = fmt.Sprintf("%s: %s changes size", who(d, p.Hosts), p.Name)
	case p.Old == "":
		s = fmt.Sprintf("%s %s %s %s (new)", who(d, p.Hosts), pick(n, "gets", "get"), p.Name, p.New)
	case p.New == "":
		s = fmt.Sprintf("%s %s %s %s", who(d, p.Hosts), pick(n, "drops", "drop"), p.Name, p.Old)
	default:
		s = fmt.Sprintf("%s %s %s %s (was %s)", who(d, p.Hosts), pick(n, "gets", "get"), p.Name, p.New, p.Old)
	}
	switch {
	case p.SizeMin == 0 && p.SizeMax == 0:
	case n == 1:
		s += ", " + Size(p.SizeTotal)
	case p.SizeMin == p.SizeMax:
		s += ", " + Size(p.SizeMin) + " each"
	default:
		s += fmt.Sprintf(", %s to %s each (%s in total)", Size(p.SizeMin), Size(p.SizeMax), Size(p.SizeTotal))
	}
	return s
}

type unitGroup struct {
	action string
	hosts  []string
	units  []string
}

// groupUnits joins the units of one action that apply to the same hosts.
func groupUnits(units []Unit) []unitGroup {
	var gs []unitGroup
	for _, u := range units {
		i := slices.IndexFunc(gs, func(g unitGroup) bool { return g.action == u.Action && slices.Equal(g.hosts, u.Hosts) })
		if i < 0 {
			gs = append(gs, unitGroup{action: u.Action, hosts: u.Hosts})
			i = len(gs) - 1
		}
		gs[i].units = append(gs[i].units, u.Unit)
	}
	return gs
}

func hostLines(h HostDiff) []string {
	var parts []string
	if h.CurrentVersion != "" || h.NewVersion != "" {
		parts = append(parts, fmt.Sprintf("%s → %s", orDash(h.CurrentVersion), orDash(h.NewVersion)))
	}
	switch {
	case h.Unchanged:
		parts = append(parts, "runs the new system already")
	case h.ClosureKnown:
		parts = append(parts, "closure "+Size(h.ClosureDelta))
	}
	out := []string{strings.TrimRight(h.Name+": "+strings.Join(parts, ", "), " ")}
	for _, c := range h.Changes {
		line := "    " + c.Name
		if c.Old != "" || c.New != "" {
			line += fmt.Sprintf(" %s → %s", orEmpty(c.Old), orEmpty(c.New))
		}
		if c.SizeBytes != 0 {
			line += ", " + Size(c.SizeBytes)
		}
		out = append(out, line)
	}
	for _, l := range []struct {
		action string
		units  []string
	}{{ActionStop, h.Stop}, {ActionRestart, h.Restart}, {ActionReload, h.Reload}, {ActionStart, h.Start}} {
		if len(l.units) > 0 {
			out = append(out, fmt.Sprintf("    %s: %s", l.action, strings.Join(l.units, ", ")))
		}
	}
	if h.Reboot != "" {
		out = append(out, "    reboot: "+h.Reboot)
	}
	return out
}

// who names a set of hosts: "all 3 hosts" when it is the whole batch,
// else "2 hosts (web1, web2)", listing at most MaxNames names.
func who(d Diff, hosts []string) string {
	n := len(hosts)
	if n == d.Hosts && n > 1 {
		return fmt.Sprintf("all %d hosts", n)
	}
	if n == d.Hosts {
		return hosts[0]
	}
	names := hosts
	more := ""
	if len(names) > MaxNames {
		names = names[:MaxNames]
		more = fmt.Sprintf(" and %d more", n-MaxNames)
	}
	return fmt.Sprintf("%s (%s%s)", countHosts(n), strings.Join(names, ", "), more)
}

func countHosts(n int) string { return fmt.Sprintf("%d %s", n, pick(n, "host", "hosts")) }

func pick(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func verb(action string, n int) string {
	if n == 1 {
		return action + "s"
	}
	return action
}

func needs(n int, what string) string { return pick(n, "needs ", "need ") + what }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orEmpty(s string) string {
	if s == "" {
		return "∅"
	}
	return s
}

// Size renders a signed byte count as people read it: "+2.5 MiB",
// "-120.0 KiB", "+0 B" (KiB, MiB, GiB, TiB with one decimal).
func Size(b int64) string {
	sign := "+"
	if b < 0 {
		sign = "-"
	}
	a := math.Abs(float64(b))
	if a < 1024 {
		return fmt.Sprintf("%s%d B", sign, int64(a))
	}
	for _, unit := range []string{"KiB", "MiB", "GiB"} {
		a /= 1024
		if a < 1024 {
			return fmt.Sprintf("%s%.1f %s", sign, a, unit)
		}
	}
	return fmt.Sprintf("%s%.1f TiB", sign, a/1024)
}
