package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/activation"
)

// selfRestarter restarts the agent's own unit after a confirmed deployment
// when the unit's definition changed since the agent started (a new agent
// package or config). The NixOS module sets restartIfChanged = false so a
// switch never kills the agent that runs it; this is the other half.
type selfRestarter struct {
	unit    string
	run     activation.Runner
	log     hclog.Logger
	initial string
	delay   time.Duration
}

func newSelfRestarter(ctx context.Context, unit string, run activation.Runner, log hclog.Logger) *selfRestarter {
	r := &selfRestarter{unit: unit, run: run, log: log.Named("self-restart"), delay: time.Second}
	r.initial = r.fingerprint(ctx)
	return r
}

// fingerprint hashes what systemd would run for the unit: its ExecStart,
// environment and the contents of its unit file and drop-ins. "" when the
// agent does not run as that unit (e.g. started by hand).
func (r *selfRestarter) fingerprint(ctx context.Context) string {
	var props []string
	code, err := r.run.Run(ctx, []string{"systemctl", "show", "--property=LoadState,FragmentPath,DropInPaths,ExecStart,Environment", r.unit},
		func(l string) { props = append(props, l) })
	if err != nil || code != 0 {
		return ""
	}
	h := sha256.New()
	for _, p := range props {
		if p == "LoadState=not-found" {
			return ""
		}
		if strings.HasPrefix(p, "ExecStart=") {
			// Drop the runtime fields (pid, start times) of the last run.
			if i := strings.Index(p, " ; ignore_errors"); i > 0 {
				p = p[:i]
			}
		}
		h.Write([]byte(p + "\n"))
		k, v, _ := strings.Cut(p, "=")
		if k == "FragmentPath" || k == "DropInPaths" {
			for _, f := range strings.Fields(v) {
				b, _ := os.ReadFile(f)
				h.Write(b)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// afterConfirm restarts the unit if it changed. It waits a moment so the
// confirmation's response reaches the controller first.
func (r *selfRestarter) afterConfirm(id string) {
	if r.initial == "" {
		return
	}
	time.Sleep(r.delay)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := r.fingerprint(ctx)
	if now == "" || now == r.initial {
		return
	}
	r.log.Info("the agent's unit changed with the confirmed deployment: restarting into the new version", "deployment", id, "unit", r.unit)
	if code, err := r.run.Run(ctx, []string{"systemctl", "restart", "--no-block", r.unit}, nil); err != nil || code != 0 {
		r.log.Error("restarting the agent's unit", "unit", r.unit, "code", code, "error", err)
	}
}
