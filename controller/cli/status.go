package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"

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
			type row struct {
				name string
				st   *agentv1.StatusResponse
				rtt  time.Duration
				err  error
			}
			rows := make([]row, len(hosts))
			var wg sync.WaitGroup
			for i, h := range hosts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, rtt, err := c.status(ctx, n, h.Addr())
					rows[i] = row{name: h.Name, st: st, rtt: rtt, err: err}
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
					b, _ := protojson.Marshal(r.st)
					fmt.Fprintf(c.io.Stdout, `{"host":%q,"reachable":true,"rttMs":%d,"status":%s}`+"\n", r.name, r.rtt.Milliseconds(), b)
					continue
				}
				st := r.st
				failed := "-"
				if len(st.FailedUnits) > 0 {
					failed = strings.Join(st.FailedUnits, ",")
				}
				pending := "-"
				if p := st.Pending; p != nil {
					pending = fmt.Sprintf("%s (%s left)", p.DeploymentId, time.Until(p.Deadline.AsTime()).Round(time.Second))
				}
				last := "-"
				if l := st.LastDeployment; l != nil {
					last = l.DeploymentId + " " + outcomeName(l.Outcome)
					if r := revision(l.SourceRev, l.SourceDirty); r != "-" {
						last += " @" + r
					}
				}
				tbl.add(r.name, fmt.Sprintf("yes %dms", r.rtt.Milliseconds()),
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

// status asks one agent for its status and measures the round trip.
func (c *CLI) status(ctx context.Context, n *network, host string) (*agentv1.StatusResponse, time.Duration, error) {
	conn, err := c.dial(ctx, n, host)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	st, err := conn.API.Status(cctx, &agentv1.StatusRequest{})
	if err != nil {
		return nil, 0, rpcError(host, err)
	}
	return st, time.Since(t0), nil
}

func (c *CLI) printStatus(st *agentv1.StatusResponse) {
	w := c.io.Stdout
	row := func(k, v string) { fmt.Fprintf(w, "%-14s %s\n", k, termsafe.Line(v)) }
	row("host", st.Host)
	row("agent", fmt.Sprintf("%s (up %s)", st.AgentVersion, st.AgentUptime.AsDuration()))
	row("system", orDash(st.CurrentStorePath))
	row("generation", fmt.Sprintf("%d %s", st.CurrentGeneration, st.NixosVersion))
	row("uptime", st.Uptime.AsDuration().String())
	row("state", orDash(st.SystemState))
	failed := "none"
	if len(st.FailedUnits) > 0 {
		failed = strings.Join(st.FailedUnits, ", ")
	}
	row("failed units", failed)
	if p := st.Pending; p != nil {
		left := time.Until(p.Deadline.AsTime()).Round(time.Second)
		row("pending", fmt.Sprintf("%s awaiting confirmation, %s left (else it rolls back)", p.DeploymentId, left))
	}
	if l := st.LastDeployment; l != nil {
		row("last deploy", fmt.Sprintf("%s %s %s %s", l.DeploymentId, outcomeName(l.Outcome), l.Started.AsTime().Local().Format(time.DateTime), l.Message))
		if l.KeyId != "" {
			row("signed by key", l.KeyId)
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

func outcomeName(o agentv1.Outcome) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_")), "_", " ")
}

func phaseName(p agentv1.Phase) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(p.String(), "PHASE_")), "_", "-")
}
