// Package nix is the single place that runs nix and nix-env: every call
// gets the same NIX_CONFIG (nix-command and flakes added to the host's own
// experimental features, plus the caller's extra lines),
// is logged, streams its stderr line by line, and fails with an *Error that
// carries the argv, the exit code and the tail of stderr. It also holds the
// pure parsers for what those commands print.
package nix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNoOutput: nix build reported no "out" output.
	ErrNoOutput = errors.New("nix build reported no out path")
	// ErrBadHost: a host name cannot be used as a flake attribute.
	ErrBadHost = errors.New("invalid host name")
	// ErrParse: nix printed something the parser does not understand.
	ErrParse = errors.New("cannot parse nix output")
	// ErrNotNixOS: a store path given as a system has no nixos-version.
	ErrNotNixOS = errors.New("not a NixOS system")
)

// baseConfig is always part of NIX_CONFIG. It uses the extra- form so the
// features the host enables itself (nix.settings.experimental-features in
// /etc/nix/nix.conf, or an inherited NIX_CONFIG) stay enabled: a plain
// "experimental-features =" line would replace that list.
const baseConfig = "extra-experimental-features = nix-command flakes"

// Options configure a Nix.
type Options struct {
	// Nix is the nix binary. Default (""): "nix" from PATH.
	Nix string
	// NixEnv is the nix-env binary. Default (""): "nix-env" from PATH.
	NixEnv string
	// NixStore is the nix-store binary (restore, dump, validity of store
	// paths: the locked inputs, see inputs.go). Default (""): "nix-store"
	// from PATH.
	NixStore string
	// ExtraConfig are nix.conf lines appended to NIX_CONFIG after
	// "extra-experimental-features = nix-command flakes", e.g. "sandbox = false"
	// or "substituters =" in tests. Default: none.
	ExtraConfig []string
	// Environ is the environment nix runs in. A NIX_CONFIG in it is kept
	// and our lines are appended to it. Default (nil): os.Environ() as of New.
	Environ []string
	// ProfileStore is the store nix-env uses for profile commands (its
	// --store flag), e.g. "local" for root to write the store's database
	// itself instead of asking a nix-daemon: the agent's rollback must work
	// when the system it replaces left no working daemon. Default (""):
	// nix's own choice (NIX_REMOTE, the store setting, else "auto").
	ProfileStore string
	// Runner starts the processes. Default (nil): ExecRunner{}.
	Runner Runner
	// TailLines is how many trailing stderr lines an *Error keeps.
	// Default (0): 20.
	TailLines int
}

// Nix runs nix commands. It is safe for concurrent use.
type Nix struct {
	nix, nixEnv string
	nixStore    string
	storeArgs   []string // "--store <ProfileStore>" for nix-env, or none
	env         []string
	runner      Runner
	tailLines   int
	log         hclog.Logger
}

// New returns a Nix; log may be nil.
func New(opts Options, log hclog.Logger) *Nix {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	n := &Nix{
		nix:       opts.Nix,
		nixEnv:    opts.NixEnv,
		nixStore:  opts.NixStore,
		runner:    opts.Runner,
		tailLines: opts.TailLines,
		log:       log.Named("nix"),
	}
	if n.nix == "" {
		n.nix = "nix"
	}
	if n.nixEnv == "" {
		n.nixEnv = "nix-env"
	}
	if n.nixStore == "" {
		n.nixStore = "nix-store"
	}
	if n.runner == nil {
		n.runner = ExecRunner{}
	}
	if opts.ProfileStore != "" {
		n.storeArgs = []string{"--store", opts.ProfileStore}
	}
	if n.tailLines <= 0 {
		n.tailLines = 20
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	n.env = withNixConfig(environ, opts.ExtraConfig)
	return n
}

// withNixConfig returns environ with NIX_CONFIG set to its old value (if
// any) followed by our lines, so ours win where both set a key.
func withNixConfig(environ, extra []string) []string {
	var prev string
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			prev = v
			continue
		}
		out = append(out, kv)
	}
	lines := []string{}
	if strings.TrimSpace(prev) != "" {
		lines = append(lines, strings.TrimRight(prev, "\n"))
	}
	lines = append(lines, baseConfig)
	lines = append(lines, extra...)
	return append(out, "NIX_CONFIG="+strings.Join(lines, "\n"))
}

// Error is a failed nix or nix-env run.
type Error struct {
	Argv       []string // the command that failed
	ExitCode   int      // its exit status; -1 if it did not exit normally
	StderrTail string   // its last stderr lines, ANSI codes removed
	Err        error    // what the runner returned
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if line := e.Summary(); line != "" {
		msg += ": " + line
	}
	return msg
}

// Unwrap returns the runner's error.
func (e *Error) Unwrap() error { return e.Err }

// Summary returns the most telling line of the stderr tail: the last one
// starting with "error:", else the last non-empty one.
func (e *Error) Summary() string {
	lines := strings.Split(strings.TrimSpace(e.StderrTail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "error:") {
			return strings.TrimSpace(lines[i])
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// run is the one helper every command goes through. It returns stdout;
// stderr lines go to onLine (may be nil), the debug log at trace level, and
// the tail kept for *Error.
func (n *Nix) run(ctx context.Context, argv []string, onLine func(string)) ([]byte, error) {
	var stdout bytes.Buffer
	err := n.runIO(ctx, argv, nil, &stdout, onLine)
	return stdout.Bytes(), err
}

// runTo is run with stdout streamed to w.
func (n *Nix) runTo(ctx context.Context, argv []string, onLine func(string), stdout io.Writer) error {
	return n.runIO(ctx, argv, nil, stdout, onLine)
}

// runIO is run with the process's standard input and output given: stdin
// may be nil, stdout receives what the command prints.
func (n *Nix) runIO(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer, onLine func(string)) error {
	argv = n.lockArgv(argv)
	log := n.log.With("argv", strings.Join(argv, " "))
	log.Debug("running")
	start := time.Now()
	tail := newTail(n.tailLines)
	lw := &lineWriter{emit: func(line string) {
		line = StripANSI(line)
		tail.add(line)
		log.Trace("stderr", "line", line)
		if onLine != nil {
			onLine(line)
		}
	}}
	err := n.runner.Run(ctx, Cmd{Argv: argv, Env: n.env, Stdout: stdout, Stderr: lw, Stdin: stdin})
	lw.flush()
	if err != nil {
		code := -1
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		e := &Error{Argv: argv, ExitCode: code, StderrTail: tail.String(), Err: err}
		log.Debug("failed", "duration", time.Since(start), "exit_code", code, "error", err)
		return e
	}
	log.Debug("done", "duration", time.Since(start))
	return nil
}

// maxLine bounds one stderr line kept in memory; longer ones are cut.
const maxLine = 64 << 10

// lineWriter splits what is written into lines ("\n" or "\r" ends one).
type lineWriter struct {
	emit func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' || b == '\r' {
			w.emit(string(w.buf))
			w.buf = w.buf[:0]
			continue
		}
		if len(w.buf) < maxLine {
			w.buf = append(w.buf, b)
		}
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
}

// tail keeps the last n non-empty lines.
type tail struct {
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(t.lines) == t.n {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.n-1]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string { return strings.Join(t.lines, "\n") }

// ansiRE matches CSI and OSC escape sequences.
var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)`)

// StripANSI removes terminal escape sequences (nix colors some output even
// when it is not a terminal).
func StripANSI(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	return ansiRE.ReplaceAllString(s, "")
}
