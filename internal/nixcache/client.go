package nixcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DialFunc dials a peer over the tailnet (tailnet.Node.Dial).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Client asks a rollout's build peers about a store path and forwards the
// host's nix to a peer's cache.
type Client struct {
	// Dial reaches the peers. Required.
	Dial DialFunc
	// Port is the peers' cache port on the tailnet. Required.
	Port int
	// Poll is how often a waiting host asks again. Default (0): 500ms.
	Poll time.Duration
	// StartWait bounds how long a peer that has not started the rollout or
	// not evaluated yet is waited for; a peer that builds is waited for as
	// long as ctx allows. Default (0): 2m.
	StartWait time.Duration
	// Log; default (nil): none.
	Log hclog.Logger
}

func (c *Client) log() hclog.Logger {
	if c.Log == nil {
		return hclog.NewNullLogger()
	}
	return c.Log
}

func (c *Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         c.Dial,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

func (c *Client) base(peer string) string {
	return "http://" + net.JoinHostPort(peer, strconv.Itoa(c.Port))
}

// State asks peer where it stands with hash in rollout.
func (c *Client) State(ctx context.Context, hc *http.Client, peer, rollout, hash string) (BuildState, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base(peer)+BuildStatePrefix+rollout+"/"+hash, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("%s: %s: %s", peer, resp.Status, strings.TrimSpace(string(b)))
	}
	var r StateReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&r); err != nil {
		return "", fmt.Errorf("%s: build state: %w", peer, err)
	}
	return r.State, nil
}

// maxErrors is how many failed asks in a row make a peer skipped.
const maxErrors = 3

// Choose decides who provides storePath for this host: the first of peers
// (in rollout order) that has it, once no peer before it that builds it or
// may still build it is left; "" means this host builds it itself. It waits
// while a peer builds the path, and up to StartWait for peers that have not
// started the rollout or not evaluated yet. A peer that fails, builds
// another path or cannot be reached is skipped. logf reports the waiting.
func (c *Client) Choose(ctx context.Context, rollout, storePath string, peers []string, logf func(string, ...any)) (string, error) {
	hash := HashPart(storePath)
	if hash == "" {
		return "", fmt.Errorf("%w: %q is not a store path", ErrBadRequest, storePath)
	}
	if len(peers) == 0 {
		return "", nil
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	startWait := c.StartWait
	if startWait <= 0 {
		startWait = 2 * time.Minute
	}
	hc := c.http()
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(startWait)
	skipped := map[string]bool{}
	errs := map[string]int{}
	said := map[string]BuildState{}
	for {
		// Each round asks the peers in order and stops at the first that
		// has the path or may still provide it: the peers after it are
		// asked only once it is skipped (one request per round while a
		// builder builds, not one per peer: 16 hosts polling every peer
		// cost more than the build they save).
		pending := ""
	round:
		for _, p := range peers {
			if skipped[p] {
				continue
			}
			st, err := c.State(ctx, hc, p, rollout, hash)
			if err != nil {
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
				errs[p]++
				if errs[p] >= maxErrors {
					logf("build peer %s cannot be reached (%v); skipping it", p, err)
					skipped[p] = true
					continue
				}
				pending = p
				break round
			}
			errs[p] = 0
			if said[p] != st {
				said[p] = st
				c.log().Debug("build peer", "peer", p, "state", st)
			}
			switch st {
			case StateHave:
				return p, nil
			case StateOther, StateFailed:
				skipped[p] = true
				logf("build peer %s: %s; skipping it", p, st)
			case StateBuilding:
				pending = p
				break round
			case StateEvaluating, StateUnknown:
				if time.Now().After(deadline) {
					skipped[p] = true
					logf("build peer %s is still %s after %v; skipping it", p, st, startWait)
					continue
				}
				pending = p
				break round
			default:
				skipped[p] = true
			}
		}
		if pending == "" {
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Forwarder is a local binary cache on 127.0.0.1 that forwards the host's
// nix to one peer's cache over the tailnet. Bytes counts what came over.
type Forwarder struct {
	URL   string // http://127.0.0.1:<port>
	Bytes atomic.Int64
	srv   *http.Server
	ln    net.Listener
	hc    *http.Client
}

// Forward starts a Forwarder to peer; Close stops it.
func (c *Client) Forward(peer string) (*Forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fleet cache forwarder: %w", err)
	}
	f := &Forwarder{URL: "http://" + ln.Addr().String(), ln: ln, hc: c.http()}
	base := c.base(peer)
	log := c.log().With("peer", peer)
	f.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !forwardable(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := f.hc.Do(req)
		if err != nil {
			log.Warn("forwarding", "path", r.URL.Path, "error", err)
			http.Error(w, "peer unreachable", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, h := range []string{"Content-Type", "Content-Length"} {
			if v := resp.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		n, err := io.Copy(w, resp.Body)
		f.Bytes.Add(n)
		if err != nil {
			log.Warn("forwarding", "path", r.URL.Path, "bytes", n, "error", err)
			panic(http.ErrAbortHandler) // a short body, not a complete-looking one
		}
	})}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// forwardable: only what nix asks of a binary cache.
func forwardable(p string) bool {
	switch {
	case p == "/nix-cache-info":
		return true
	case strings.HasPrefix(p, "/nar/") && strings.HasSuffix(p, ".nar"):
		return ValidHashPart(strings.TrimSuffix(strings.TrimPrefix(p, "/nar/"), ".nar"))
	case strings.HasSuffix(p, ".narinfo") && strings.Count(p, "/") == 1:
		return ValidHashPart(strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".narinfo"))
	}
	return false
}

// Close stops the forwarder.
func (f *Forwarder) Close() error {
	err := f.srv.Close()
	f.hc.CloseIdleConnections()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
