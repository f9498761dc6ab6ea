package flakeinputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pantheros/panther/internal/nix"
)

// LockError names the inputs flake.nix declares that flake.lock does not
// lock.
type LockError struct {
	Dir        string   // the flake's directory
	Missing    []string // declared inputs without a (locked) entry, sorted
	NoLockFile bool     // there is no flake.lock at all
}

func (e *LockError) Error() string {
	q := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		q[i] = fmt.Sprintf("%q", m)
	}
	what := fmt.Sprintf("flake.lock has no locked entry for input %s", strings.Join(q, ", "))
	if e.NoLockFile {
		what = fmt.Sprintf("no flake.lock, but flake.nix declares input %s", strings.Join(q, ", "))
	}
	return fmt.Sprintf("%s: %s: run 'nix flake lock' in %s and commit flake.lock", e.Dir, what, e.Dir)
}

// Unwrap makes errors.Is(err, ErrLock) true.
func (e *LockError) Unwrap() error { return ErrLock }

// Evaluator evaluates a Nix expression into JSON (*nix.Nix is one).
type Evaluator interface {
	EvalExprJSON(ctx context.Context, v any, expr string) error
}

var _ Evaluator = (*nix.Nix)(nil)

// Declared returns the inputs flake.nix at dir declares: the names under
// `inputs` and the arguments of `outputs` but self (nix resolves an
// argument without an `inputs` entry through the flake registry). It reads
// flake.nix as a plain expression: nothing is locked or fetched.
func Declared(ctx context.Context, ev Evaluator, dir string) ([]string, error) {
	var out struct {
		Inputs []string `json:"inputs"`
		Args   []string `json:"args"`
	}
	expr := fmt.Sprintf(`let f = import (/. + %s); in { inputs = builtins.attrNames (f.inputs or {}); args = builtins.attrNames (builtins.functionArgs f.outputs); }`,
		nix.NixString(filepath.Join(dir, "flake.nix")))
	if err := ev.EvalExprJSON(ctx, &out, expr); err != nil {
		return nil, fmt.Errorf("read the inputs of %s: %w", filepath.Join(dir, "flake.nix"), err)
	}
	names := append(out.Inputs, out.Args...)
	names = slices.DeleteFunc(names, func(s string) bool { return s == "self" })
	sort.Strings(names)
	return slices.Compact(names), nil
}

// lockFile is the part of flake.lock CheckLock reads.
type lockFile struct {
	Nodes map[string]struct {
		Inputs map[string]json.RawMessage `json:"inputs"`
		Locked map[string]any             `json:"locked"`
	} `json:"nodes"`
	Root string `json:"root"`
}

// Unlocked compares the declared inputs with the lock file's bytes (nil:
// no flake.lock) and returns the declared ones without a locked entry.
func Unlocked(declared []string, lock []byte) ([]string, error) {
	if lock == nil {
		return declared, nil
	}
	var lf lockFile
	if err := json.Unmarshal(lock, &lf); err != nil {
		return nil, fmt.Errorf("%w: flake.lock does not parse: %v", ErrLock, err)
	}
	root, ok := lf.Nodes[lf.Root]
	if !ok {
		return nil, fmt.Errorf("%w: flake.lock has no root node %q", ErrLock, lf.Root)
	}
	var missing []string
	for _, name := range declared {
		raw, ok := root.Inputs[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		var node string
		if json.Unmarshal(raw, &node) != nil {
			continue // a follows path: locked where it points
		}
		if n, ok := lf.Nodes[node]; !ok || len(n.Locked) == 0 {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

// CheckLock returns a *LockError when flake.lock at dir is missing or
// lacks a locked entry for an input flake.nix declares; nil when every
// declared input is locked (a flake without inputs needs no flake.lock).
func CheckLock(ctx context.Context, ev Evaluator, dir string) error {
	declared, err := Declared(ctx, ev, dir)
	if err != nil {
		return err
	}
	lock, err := os.ReadFile(filepath.Join(dir, "flake.lock"))
	if errors.Is(err, fs.ErrNotExist) {
		lock, err = nil, nil
	}
	if err != nil {
		return err
	}
	missing, err := Unlocked(declared, lock)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(missing) > 0 {
		return &LockError{Dir: dir, Missing: missing, NoLockFile: lock == nil}
	}
	return nil
}
