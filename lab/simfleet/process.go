package simfleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ChildEnv names the environment variable that makes a process started by
// StartProcess serve a fleet (see ServeChild) instead of doing its job.
const ChildEnv = "PANTHER_SIMFLEET_CHILD"

// childSpec is what the parent asks the child for.
type childSpec struct {
	Hosts  []string `json:"hosts"`
	Script Script   `json:"script"`
}

// Process is a fleet served by another process, so that what the
// controller measures of itself (memory, CPU) holds the controller alone.
type Process struct {
	// Addrs maps each host to its agent's loopback address.
	Addrs map[string]string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// StartProcess runs exe with args and ChildEnv set: exe must call
// ServeChild early (a test binary does it in a test that args select, e.g.
// "-test.run=^TestSimFleetChild$"). It returns once the child listens.
func StartProcess(ctx context.Context, exe string, args []string, hosts []string, s Script) (*Process, error) {
	spec, err := json.Marshal(childSpec{Hosts: hosts, Script: s})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simfleet: start %s: %w", exe, err)
	}
	p := &Process{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	lines := make(chan []byte, 1)
	go func() { // owned by p: it ends when the child closes stdout
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			if b := sc.Bytes(); len(b) > 0 && b[0] == '{' {
				lines <- append([]byte(nil), b...)
				break
			}
		}
		io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case b := <-lines:
		if err := json.Unmarshal(b, &p.Addrs); err != nil {
			p.Close()
			return nil, fmt.Errorf("simfleet: child's addresses: %w", err)
		}
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("simfleet: the child ended before serving: %v", err)
	case <-time.After(2 * time.Minute):
		p.Close()
		return nil, fmt.Errorf("simfleet: the child did not serve within 2 minutes")
	}
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// CPU is the child's user + system CPU time so far (Linux; 10 ms ticks).
func (p *Process) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) in ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Close ends the child (it stops when its stdin closes) and waits for it.
func (p *Process) Close() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// ServeChild serves the fleet the parent asked for and returns true once
// the parent is gone, when this process was started by StartProcess;
// otherwise it returns false at once. It prints the host → address map as
// one JSON line on stdout.
func ServeChild() bool {
	raw := os.Getenv(ChildEnv)
	if raw == "" {
		return false
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "simfleet child:", err)
		os.Exit(2)
	}
	f, err := Start(spec.Hosts, spec.Script)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simfleet child:", err)
		os.Exit(2)
	}
	defer f.Close()
	b, _ := json.Marshal(f.Addrs)
	fmt.Printf("%s\n", b)
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	return true
}
