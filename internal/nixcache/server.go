package nixcache

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// CacheInfo is the body of nix-cache-info. Priority 30 puts a peer before
// cache.nixos.org (40) and after a user's own cache at the default (50
// is lower priority, so it comes after the peers).
const CacheInfo = "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 30\n"

// DefaultPort is the fleet cache's tailnet port on agents and on a
// pantherctl that builds (--build-on local).
const DefaultPort = 7444

// BuildStatePrefix is the path of the build-state endpoint.
const BuildStatePrefix = "/panther/build-state/"

// Server serves a store read-only as a Nix binary cache, plus the
// build-state endpoint. Wrap it in the tailnet authorizer: it checks no
// caller itself.
type Server struct {
	// Store is the store served. Required.
	Store Store
	// Key signs every narinfo. Default (nil): unsigned (nix refuses them
	// unless require-sigs is off).
	Key *SecretKey
	// States answers the build-state endpoint. Default (nil): every
	// rollout is unknown.
	States *Coordinator
	// Log; default (nil): none.
	Log hclog.Logger

	// known remembers the path info of valid paths (immutable while the
	// path is valid): a substituting peer asks for a path's narinfo, then
	// its NAR, and its build state many times.
	mu    sync.Mutex
	known map[string]PathInfo
}

// maxKnown bounds the path infos the server remembers.
const maxKnown = 65536

// pathInfo is Store.PathInfo, remembered when found.
func (s *Server) pathInfo(ctx context.Context, hash string) (PathInfo, error) {
	s.mu.Lock()
	pi, ok := s.known[hash]
	s.mu.Unlock()
	if ok {
		return pi, nil
	}
	pi, err := s.Store.PathInfo(ctx, hash)
	if err != nil {
		return pi, err
	}
	s.mu.Lock()
	if s.known == nil || len(s.known) >= maxKnown {
		s.known = map[string]PathInfo{}
	}
	s.known[hash] = pi
	s.mu.Unlock()
	return pi, nil
}

func (s *Server) log() hclog.Logger {
	if s.Log == nil {
		return hclog.NewNullLogger()
	}
	return s.Log
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only cache", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/nix-cache-info":
		w.Header().Set("Content-Type", "text/x-nix-cache-info")
		_, _ = w.Write([]byte(CacheInfo))
	case strings.HasPrefix(p, BuildStatePrefix):
		s.buildState(w, r, strings.TrimPrefix(p, BuildStatePrefix))
	case strings.HasPrefix(p, "/nar/") && strings.HasSuffix(p, ".nar"):
		s.nar(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/nar/"), ".nar"))
	case strings.HasSuffix(p, ".narinfo") && strings.Count(p, "/") == 1:
		s.narinfo(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".narinfo"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request, hash string) (PathInfo, bool) {
	if !ValidHashPart(hash) {
		http.Error(w, "not a store path hash", http.StatusBadRequest)
		return PathInfo{}, false
	}
	pi, err := s.pathInfo(r.Context(), hash)
	if errors.Is(err, ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return PathInfo{}, false
	}
	if err != nil {
		s.log().Warn("path info", "hash", hash, "error", err)
		http.Error(w, "cannot read the store", http.StatusInternalServerError)
		return PathInfo{}, false
	}
	return pi, true
}

func (s *Server) narinfo(w http.ResponseWriter, r *http.Request, hash string) {
	pi, ok := s.lookup(w, r, hash)
	if !ok {
		return
	}
	b, err := NarInfo(pi, s.Key)
	if err != nil {
		s.log().Warn("narinfo", "path", pi.Path, "error", err)
		http.Error(w, "cannot describe the path", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/x-nix-narinfo")
	_, _ = w.Write(b)
}

func (s *Server) nar(w http.ResponseWriter, r *http.Request, hash string) {
	pi, ok := s.lookup(w, r, hash)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/x-nix-nar")
	if r.Method == http.MethodHead {
		return
	}
	s.log().Debug("serving nar", "path", pi.Path, "bytes", pi.NarSize)
	if err := s.Store.Dump(r.Context(), pi.Path, w); err != nil {
		// The status line is out already: the client sees a short NAR,
		// which nix refuses (its hash does not match the narinfo's).
		s.log().Warn("dump", "path", pi.Path, "error", err)
		s.mu.Lock()
		delete(s.known, hash) // collected since, say: ask the store again next time
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
}

// StateReply is the build-state endpoint's JSON body.
type StateReply struct {
	State BuildState `json:"state"`
}

func (s *Server) buildState(w http.ResponseWriter, r *http.Request, rest string) {
	rollout, hash, ok := strings.Cut(rest, "/")
	if !ok || rollout == "" || strings.Contains(hash, "/") || !ValidHashPart(hash) {
		http.Error(w, "want /panther/build-state/<rollout>/<hash>", http.StatusBadRequest)
		return
	}
	_, err := s.pathInfo(r.Context(), hash)
	have := err == nil
	st := StateUnknown
	if s.States != nil {
		st = s.States.State(rollout, hash, have)
	} else if have {
		st = StateHave
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(StateReply{State: st})
}
