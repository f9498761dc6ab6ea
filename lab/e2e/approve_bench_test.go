package e2e

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// BenchmarkPromptedDeploy measures, on one sandboxed agent, issue 12 item
// 3's "evaluations per deploy: 1 (--yes and prompted)" and issue 13 item
// 8's "a prompted deploy's time from 'y' to switched ≤ the switch step
// alone + 200 ms". One iteration is a --yes deploy and a prompted one
// (answered y), each of a new traced system (salted: built afresh).
//
// Evaluations are the traced variant's trace lines in the deployment log
// (see approve_test.go). "Switched" is the agent's "[confirm] awaiting
// confirmation" log line: the switch ran and the health check passed. The
// switch step alone is the --yes deploy's time from its dry-activate's
// summary to switched; "y" to switched is from the answer typed on the
// terminal to switched (pantherctl reads it, approves, the agent switches).
func BenchmarkPromptedDeploy(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{Hosts: map[string]string{"alpha": "good"}, AgentConfig: benchAgentConfig()})
	alpha := f.Hosts["alpha"]
	s := benchSamples{}
	from := benchUsageNow(b)
	b.ResetTimer()
	for range b.N {
		f.SetVariant("alpha", nixtest.Salted(nixtest.Traced, rand.Text()))
		before := alpha.Deployments(b)
		benchMustCtl(b, f, "deploy", "alpha", "--yes", "--flake", f.Flake)
		id := apOnlyNew(b, alpha, before)
		log := alpha.DeploymentLog(b, id)
		s.add("evals/yes-deploy", float64(len(apTraces(log, "alpha"))))
		s.addDur("ms/switch-alone", apBetween(b, log, "[summary]", "[confirm] awaiting confirmation"))

		f.SetVariant("alpha", nixtest.Salted(nixtest.Traced, rand.Text()))
		before = alpha.Deployments(b)
		answered := apAnswerOnTerminal(b, f, "y", "deploy", "alpha", "--flake", f.Flake)
		id = apOnlyNew(b, alpha, before)
		log = alpha.DeploymentLog(b, id)
		s.add("evals/prompted-deploy", float64(len(apTraces(log, "alpha"))))
		switched, ok := fleettest.LogTime(log, "[confirm] awaiting confirmation")
		if !ok {
			b.Fatalf("prompted deploy %s never switched:\n%s", id, log)
		}
		s.addDur("ms/y-to-switched", switched.Sub(answered))
	}
	b.StopTimer()
	s.report(b)
	b.ReportMetric(s.max("evals/yes-deploy"), "evals/yes-deploy-max")
	b.ReportMetric(s.max("evals/prompted-deploy"), "evals/prompted-deploy-max")
	b.ReportMetric(s.median("ms/y-to-switched")-s.median("ms/switch-alone"), "ms-over-switch")
	benchContention(b, from)
}

// apOnlyNew returns the one deployment h has that before lacks.
func apOnlyNew(tb testing.TB, h *fleettest.Host, before []string) string {
	tb.Helper()
	var ids []string
	for _, id := range h.Deployments(tb) {
		if !strings.Contains(" "+strings.Join(before, " ")+" ", " "+id+" ") {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		tb.Fatalf("%s: want one new deployment, got %v", h.Name, ids)
	}
	return ids[0]
}

// apBetween is the time from the first log line containing from to the
// first containing to.
func apBetween(tb testing.TB, log, from, to string) time.Duration {
	tb.Helper()
	t0, ok0 := fleettest.LogTime(log, from)
	t1, ok1 := fleettest.LogTime(log, to)
	if !ok0 || !ok1 {
		tb.Fatalf("log lacks %q or %q:\n%s", from, to, log)
	}
	return t1.Sub(t0)
}

// apAnswerOnTerminal runs pantherctl with a terminal as its stdin, types
// answer at its question, waits for it to exit 0 and returns when the
// answer was typed.
func apAnswerOnTerminal(tb testing.TB, f *fleettest.Fleet, answer string, args ...string) time.Time {
	tb.Helper()
	tty, term, err := fleettest.OpenPTY()
	if err != nil {
		tb.Fatalf("a terminal for pantherctl: %v", err)
	}
	defer tty.Close()
	cmd := exec.Command(f.Bin.Ctl, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = f.Dir, f.Env(), term
	var mu sync.Mutex
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &out}, lockedWriter{&mu, &errOut}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting pantherctl: %v", err)
	}
	term.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		asked := strings.Contains(errOut.String(), "[y/N]")
		mu.Unlock()
		if asked {
			break
		}
		select {
		case err := <-done:
			tb.Fatalf("pantherctl ended before asking (%v):\n%s\n%s", err, out.String(), errOut.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			tb.Fatalf("pantherctl did not ask within 2m:\n%s", errOut.String())
		}
	}
	answered := time.Now()
	if _, err := tty.WriteString(answer + "\n"); err != nil {
		tb.Fatalf("answering: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			tb.Fatalf("pantherctl: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		tb.Fatalf("pantherctl still running 3m after the answer")
	}
	return answered
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
