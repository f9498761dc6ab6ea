package fleettest

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/tailnet"
)

// ControllerTag is the tag pantherctl's node carries and the fleet's agents
// admit.
const ControllerTag = "tag:panther-controller"

// ControllerNode joins the fleet's tailnet as an in-process controller
// called name, tagged like pantherctl, for tests that speak the agent API
// directly (replayed or hand-made envelopes). It is closed when t ends.
func (f *Fleet) ControllerNode(t testing.TB, name string) *tailnet.Node {
	t.Helper()
	return f.Tailnet.Node(t, name, ControllerTag)
}

// Signer signs intents with the operator key the fleet's agents trust.
func (f *Fleet) Signer(t testing.TB) client.Signer {
	t.Helper()
	return client.Signer{Key: f.Key(t)}
}

// Dial connects node to host's agent on the default port; the connection
// is closed when t ends. gRPC connects lazily: the first call may wait for
// the tailnet path (seconds after an agent restart).
func (f *Fleet) Dial(t testing.TB, node *tailnet.Node, host string) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, node, host, 7443)
	if err != nil {
		t.Fatalf("fleettest: dial %s: %v", host, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// WaitReachable waits until host's agent answers `pantherctl status`: an
// agent unit that systemd reports active may not be on the tailnet yet, and
// after a network outage or an agent restart the path takes seconds to come
// back. It fails t after timeout.
func (f *Fleet) WaitReachable(t testing.TB, host string, timeout time.Duration) Result {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := f.Ctl("status", host)
		if r.Code == 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleettest: %s not reachable within %v: %s\n%s", host, timeout, r, f.Hosts[host].AgentJournal())
		}
		time.Sleep(time.Second)
	}
}

// CtlProcess is a pantherctl started in the background, for tests that act
// on what it prints while it runs (kill it right after the switch, ...).
type CtlProcess struct {
	args  []string
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{}
	res   Result

	mu     sync.Mutex
	stdout strings.Builder
	more   chan struct{} // closed and replaced on every stdout line
}

// StartCtl starts pantherctl with args like Ctl, without waiting for it.
// It is killed when t ends if still running.
func (f *Fleet) StartCtl(t testing.TB, args ...string) *CtlProcess {
	t.Helper()
	p := &CtlProcess{args: args, done: make(chan struct{}), more: make(chan struct{})}
	p.cmd = exec.Command(f.Bin.Ctl, args...)
	p.cmd.Dir = f.Dir
	p.cmd.Env = f.Env()
	var errb bytes.Buffer
	p.cmd.Stderr = &errb
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("fleettest: %v", err)
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("fleettest: starting pantherctl: %v", err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		err := p.cmd.Wait()
		p.mu.Lock()
		p.res = Result{Stdout: p.stdout.String(), Stderr: errb.String(), Elapsed: time.Since(p.start)}
		p.mu.Unlock()
		if ee, ok := err.(*exec.ExitError); ok {
			p.res.Code = ee.ExitCode()
		} else if err != nil {
			p.res.Code = -1
			p.res.Stderr += "\n" + err.Error()
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// WaitOutput waits until pantherctl's stdout contains substr and returns
// the stdout so far; it fails t at timeout or if pantherctl exits first.
func (p *CtlProcess) WaitOutput(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		out, more := p.stdout.String(), p.more
		p.mu.Unlock()
		if strings.Contains(out, substr) {
			return out
		}
		select {
		case <-more:
		case <-p.done:
			t.Fatalf("pantherctl %s exited before printing %q: %s", strings.Join(p.args, " "), substr, p.res)
		case <-timer.C:
			t.Fatalf("pantherctl %s did not print %q within %v:\n%s", strings.Join(p.args, " "), substr, timeout, out)
		}
	}
}

// Pid is pantherctl's process id.
func (p *CtlProcess) Pid() int { return p.cmd.Process.Pid }

// Kill kills pantherctl with SIGKILL (no chance to clean up or confirm)
// and returns what it did.
func (p *CtlProcess) Kill(t testing.TB) Result {
	t.Helper()
	p.cmd.Process.Kill()
	return p.Wait(t)
}

// Wait waits for pantherctl to exit and returns what it did.
func (p *CtlProcess) Wait(t testing.TB) Result {
	t.Helper()
	<-p.done
	t.Logf("pantherctl %s: exit %d in %v", strings.Join(p.args, " "), p.res.Code, p.res.Elapsed.Round(time.Millisecond))
	return p.res
}
