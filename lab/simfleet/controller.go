package simfleet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pantheros/panther/controller/cli"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
)

// Workspace is what pantherctl needs on disk to deploy to a simulated
// fleet: an operator key, a flake directory to pack and a log directory.
type Workspace struct {
	Dir, Key, Flake, Logs string
}

// NewWorkspace makes a workspace in dir.
func NewWorkspace(dir string) (Workspace, error) {
	w := Workspace{Dir: dir, Key: filepath.Join(dir, "key"), Flake: filepath.Join(dir, "flake"), Logs: filepath.Join(dir, "logs")}
	key, err := signing.GenerateKey()
	if err != nil {
		return w, err
	}
	if err := signing.WritePrivateKey(w.Key, key); err != nil {
		return w, err
	}
	if err := os.MkdirAll(w.Flake, 0o755); err != nil {
		return w, err
	}
	flake := "{\n  description = \"panther simulated fleet (never evaluated)\";\n  outputs = { self }: { };\n}\n"
	return w, os.WriteFile(filepath.Join(w.Flake, "flake.nix"), []byte(flake), 0o644)
}

// CtlRun is one in-process pantherctl run and what it cost this process.
type CtlRun struct {
	Args   []string
	Code   int
	Wall   time.Duration
	Stderr string
	// StdoutBytes counts what pantherctl printed on stdout (discarded, as
	// a terminal would not keep it in pantherctl's memory).
	StdoutBytes int64
	// RSSBefore is this process's resident set just before the run (after
	// a GC); PeakRSS the highest during the run (VmHWM, reset before it).
	RSSBefore, PeakRSS int64
	// CPU is this process's user + system CPU time during the run.
	CPU time.Duration
}

// Added is the resident memory the run added at its peak, in bytes.
func (r CtlRun) Added() int64 { return r.PeakRSS - r.RSSBefore }

func (r CtlRun) String() string {
	return fmt.Sprintf("pantherctl %s: exit %d after %v, peak RSS +%.1f MB, CPU %v\n--- stderr\n%s",
		strings.Join(r.Args, " "), r.Code, r.Wall.Round(time.Millisecond), float64(r.Added())/1e6, r.CPU.Round(time.Millisecond), r.Stderr)
}

type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// Deploy runs `pantherctl deploy <hosts> --yes --flake <w.Flake> --log-dir
// <w.Logs> --key <w.Key> [args]` in this process, reaching the agents
// through d, and measures it. Only one run at a time per process gives
// meaningful memory figures.
func (w Workspace) Deploy(ctx context.Context, d tailnet.Dialer, hosts []string, args ...string) CtlRun {
	argv := append([]string{"deploy"}, hosts...)
	argv = append(argv, "--key", w.Key, "--yes", "--flake", w.Flake, "--log-dir", w.Logs)
	argv = append(argv, args...)
	shown := append([]string{"deploy", fmt.Sprintf("<%d hosts>", len(hosts))}, args...)
	var out countWriter
	var errOut bytes.Buffer
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	before := readStatus("VmRSS")
	cpu0 := cpuTime()
	t0 := time.Now()
	code := cli.Run(ctx, argv, cli.IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Dialer: d,
		Getenv: func(string) string { return "" }})
	return CtlRun{Args: shown, Code: code, Wall: time.Since(t0), Stderr: errOut.String(), StdoutBytes: out.n.Load(),
		RSSBefore: before, PeakRSS: readStatus("VmHWM"), CPU: cpuTime() - cpu0}
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux).
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// readStatus reads a "kB" field of /proc/self/status, in bytes.
func readStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n << 10
	}
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Hosts returns n host names: sim0001, sim0002, ...
func Hosts(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("sim%04d", i+1)
	}
	return hs
}

// Model is the wall time of deploying n hosts jobs at a time when each
// host takes host and nothing else limits: ceil(n/jobs) × host.
func Model(n, jobs int, host time.Duration) time.Duration {
	if jobs < 1 {
		jobs = 1
	}
	return time.Duration((n+jobs-1)/jobs) * host
}
