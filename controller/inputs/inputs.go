// Package inputs is the controller's side of shipping a flake's locked
// inputs (see internal/flakeinputs): before anything is uploaded it
// refuses a flake whose lock is missing or incomplete, lets the local nix
// fetch every locked input, and reads the checkout's git revision; then,
// per agent, it uploads each input the agent lacks (NARs dumped once, sent
// to many) and fills the signed intent.
package inputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/flakeinputs"
	"github.com/pantheros/panther/internal/nix"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Modes of --inputs.
const (
	// Ship: the controller uploads the locked inputs; the agents fetch
	// nothing (the default).
	Ship = "ship"
	// Fetch: the agents' nix fetches the inputs, as before.
	Fetch = "fetch"
)

// ErrMode: --inputs has another value than ship or fetch.
var ErrMode = errors.New("--inputs is ship or fetch")

// ErrNoNix: shipping inputs needs nix on the controller.
var ErrNoNix = errors.New("no nix on this machine")

// Set is what one deploy ships: the inputs, the revision, and the NARs
// dumped so far.
type Set struct {
	Inputs []flakeinputs.Input
	Rev    string // git commit id of the checkout, "" = not a git checkout
	Dirty  bool   // the checkout has uncommitted changes to tracked files
	Fetch  bool   // --inputs fetch: nothing shipped

	n     *nix.Nix
	mu    sync.Mutex
	dumps map[string]*dump
}

type dump struct {
	once sync.Once
	f    *os.File
	err  error
}

// Prepare checks the lock of the flake at dir, and in Ship mode collects
// its inputs (the local nix fetches what the local store lacks). n may be
// nil when there is no nix: then the lock is checked by the agent only,
// and Ship works only for a flake without locked inputs.
func Prepare(ctx context.Context, n *nix.Nix, dir, mode string) (*Set, error) {
	if mode != Ship && mode != Fetch {
		return nil, fmt.Errorf("%w, not %q", ErrMode, mode)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Set{Fetch: mode == Fetch, n: n, dumps: map[string]*dump{}}
	s.Rev, s.Dirty = archive.ExecGit{}.Revision(ctx, abs)
	if n == nil {
		if mode == Ship && lockHasInputs(abs) {
			return nil, fmt.Errorf("%w: shipping the locked inputs of %s needs it (or pass --inputs fetch)", ErrNoNix, abs)
		}
		return s, nil
	}
	if err := flakeinputs.CheckLock(ctx, n, abs); err != nil {
		return nil, err
	}
	if mode == Fetch || !lockHasInputs(abs) {
		return s, nil
	}
	s.Inputs, err = flakeinputs.Collect(ctx, n, "path:"+abs)
	if err != nil {
		return nil, fmt.Errorf("fetching the locked inputs of %s: %w", abs, err)
	}
	return s, nil
}

// lockHasInputs: flake.lock exists and locks something (has a node
// besides the root), or does not parse.
func lockHasInputs(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "flake.lock"))
	if err != nil {
		return false
	}
	var lf struct {
		Nodes map[string]json.RawMessage `json:"nodes"`
	}
	return json.Unmarshal(b, &lf) != nil || len(lf.Nodes) > 1
}

// Apply puts the inputs and the revision into a deploy intent.
func (s *Set) Apply(in *agentv1.Intent) {
	in.SourceRev, in.SourceDirty, in.FetchInputs = s.Rev, s.Dirty, s.Fetch
	in.Inputs = nil
	for _, fi := range s.Inputs {
		in.Inputs = append(in.Inputs, toProto(fi))
	}
}

func toProto(fi flakeinputs.Input) *agentv1.FlakeInput {
	return &agentv1.FlakeInput{Name: fi.Name, StorePath: fi.StorePath, NarHash: fi.NarHash, NarSize: fi.NarSize}
}

// Uploaded is what Upload did for one agent.
type Uploaded struct {
	Inputs int   // inputs sent
	Bytes  int64 // NAR bytes sent
}

// Upload sends every input the agent behind conn lacks.
func (s *Set) Upload(ctx context.Context, conn *client.Conn, signer client.Signer) (Uploaded, error) {
	var up Uploaded
	if len(s.Inputs) == 0 {
		return up, nil
	}
	paths := make([]string, len(s.Inputs))
	for i, fi := range s.Inputs {
		paths[i] = fi.StorePath
	}
	missing, err := conn.MissingInputs(ctx, paths)
	if err != nil {
		return up, err
	}
	for _, fi := range s.Inputs {
		if !contains(missing, fi.StorePath) {
			continue
		}
		f, err := s.nar(ctx, fi)
		if err != nil {
			return up, err
		}
		n, err := conn.UploadInput(ctx, signer, toProto(fi), io.NewSectionReader(f, 0, fi.NarSize))
		up.Bytes += n
		if err != nil {
			return up, fmt.Errorf("upload input %s (%s): %w", fi.Name, fi.StorePath, err)
		}
		up.Inputs++
	}
	return up, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nar dumps an input's NAR into an unlinked temp file once per deploy.
func (s *Set) nar(ctx context.Context, fi flakeinputs.Input) (*os.File, error) {
	s.mu.Lock()
	d := s.dumps[fi.StorePath]
	if d == nil {
		d = &dump{}
		s.dumps[fi.StorePath] = d
	}
	s.mu.Unlock()
	d.once.Do(func() {
		f, err := os.CreateTemp("", "panther-input-*.nar")
		if err != nil {
			d.err = err
			return
		}
		os.Remove(f.Name())
		if err := s.n.Dump(ctx, fi.StorePath, f); err != nil {
			f.Close()
			d.err = err
			return
		}
		if info, err := f.Stat(); err != nil || info.Size() != fi.NarSize {
			f.Close()
			d.err = fmt.Errorf("dump of %s is not %d bytes as path-info said", fi.StorePath, fi.NarSize)
			return
		}
		d.f = f
	})
	return d.f, d.err
}

// Close removes the dumped NARs.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dumps {
		if d.f != nil {
			d.f.Close()
		}
	}
}
