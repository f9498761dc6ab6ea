package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/controller/termsafe"
)

func (c *CLI) statusCmd() *command {
	var flake string
	var all bool
	return &command{
		name: "status", usage: "status <host|@tag>... | --all [--flake DIR]",
		short: "Show hosts' agent, running system, generation, systemd state and pending deployment.",
		long: `One host: a detailed view. Several hosts: one row each, asked in parallel;
unreachable hosts are reported, not fatal (the exit code is 1 when any was).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&flake, "flake", ".", "flake directory (for @tags and --all)")
			fs.BoolVar(&all, "all", false, "every host of the flake")
		},
		run: func(ctx context.Context, args []string) error {
			hosts, err := c.selectHosts(ctx, flake, args, all)
			if err != nil {
				return err
			}
			n, err := c.connectTailnet(ctx)
			if err != nil {
				return err
			}
			defer n.close()
			fl := c.fleet(n, client.Signer{})
			defer fl.Close()
			type row struct {
				name string
				st   *client.HostStatus
				err  error
			}
			rows := make([]row, len(hosts))
			var wg sync.WaitGroup
			for i, h := range hosts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := fl.Status(ctx, rolloutHost(h), statusTimeout)
					if err != nil {
						err = agentExit(h.Addr(), err)
					}
					rows[i] = row{name: h.Name, st: st, err: err}
				}()
			}
			wg.Wait()
			if len(rows) == 1 && !all && !strings.HasPrefix(args[0], "@") && !c.g.json {
				if rows[0].err != nil {
					return rows[0].err
				}
				c.printStatus(rows[0].st)
				return nil
			}
			unreachable := 0
			tbl := newTable(column{title: "HOST", max: 24}, column{title: "REACHABLE"}, column{title: "GEN"},
				column{title: "NIXOS VERSION", max: 40}, column{title: "STATE", max: 12}, column{title: "FAILED UNITS", max: 30},
				column{title: "PENDING", max: 40}, column{title: "LAST DEPLOYMENT"})
			for _, r := range rows {
				if r.err != nil {
					unreachable++
					if c.g.json {
						writeJSON(c.io.Stdout, map[string]any{"host": r.name, "reachable": false, "error": r.err.Error()})
					} else {
						tbl.add(r.name, "no", r.err.Error())
					}
					continue
				}
				if c.g.json {
					b, _ := r.st.MarshalJSON()
					fmt.Fprintf(c.io.Stdout, `{"host":%q,"reachable":true,"rttMs":%d,"status":%s}`+"\n", r.name, r.st.RTT.Milliseconds(), b)
					continue
				}
				st := r.st
				failed := "-"
				if len(st.FailedUnits) > 0 {
					failed = strings.Join(st.FailedUnits, ",")
				}
				pending := "-"
				if p := st.Pending; p != nil {
					pending = pendingCell(p)
				}
				last := "-"
				if l := st.Last; l != nil {
					last = l.DeploymentID + " " + l.Outcome.String()
					if r := revision(l.SourceRev, l.SourceDirty); r != "-" {
						last += " @" + r
					}
				}
				tbl.add(r.name, fmt.Sprintf("yes %dms", st.RTT.Milliseconds()),
					fmt.Sprint(st.CurrentGeneration), orDash(st.NixosVersion), orDash(st.SystemState), failed, pending, last)
			}
			if !c.g.json {
				tbl.write(c.io.Stdout)
			}
			if unreachable > 0 {
				return exitf(ExitError, "%d of %d hosts unreachable", unreachable, len(rows))
			}
			return nil
		},
	}
}

// pendingCell is the status table's PENDING cell for p.
func pendingCell(p *client.Pending) string {
	if p.AwaitingApproval {
		return fmt.Sprintf("%s awaiting approval until %s", p.DeploymentID, p.Deadline.Local().Format(time.TimeOnly))
	}
	return fmt.Sprintf("%s (%s left)", p.DeploymentID, time.Until(p.Deadline).Round(time.Second))
}

// pendingLine is the one-host status's "pending" line for p: a deployment
// awaiting approval (stopped after dry-activate, nothing changed yet) or
// confirmation (switched, rolls back at the deadline).
func pendingLine(p *client.Pending) string {
	left := time.Until(p.Deadline).Round(time.Second)
	if p.AwaitingApproval {
		return fmt.Sprintf("%s awaiting approval until %s, %s left (else it ends with nothing changed)",
			p.DeploymentID, p.Deadline.Local().Format(time.DateTime), left)
	}
	return fmt.Sprintf("%s awaiting confirmation, %s left (else it rolls back)", p.DeploymentID, left)
}

// statusTimeout bounds one host's status call.
const statusTimeout = 30 * time.Second

func (c *CLI) printStatus(st *client.HostStatus) {
	w := c.io.Stdout
	row := func(k, v string) { fmt.Fprintf(w, "%-14s %s\n", k, termsafe.Line(v)) }
	row("host", st.Host)
	row("agent", fmt.Sprintf("%s (up %s)", st.AgentVersion, st.AgentUptime))
	row("system", orDash(st.CurrentStorePath))
	row("generation", fmt.Sprintf("%d %s", st.CurrentGeneration, st.NixosVersion))
	row("uptime", st.Uptime.String())
	row("state", orDash(st.SystemState))
	failed := "none"
	if len(st.FailedUnits) > 0 {
		failed = strings.Join(st.FailedUnits, ", ")
	}
	row("failed units", failed)
	if p := st.Pending; p != nil {
		row("pending", pendingLine(p))
	}
	if l := st.Last; l != nil {
		started := l.Started
		if started.IsZero() {
			started = time.Unix(0, 0).UTC()
		}
		row("last deploy", fmt.Sprintf("%s %s %s %s", l.DeploymentID, l.Outcome, started.Local().Format(time.DateTime), l.Message))
		if l.KeyID != "" {
			row("signed by key", l.KeyID)
		}
		row("revision", revision(l.SourceRev, l.SourceDirty))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
