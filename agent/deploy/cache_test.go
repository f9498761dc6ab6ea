package deploy

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pantheros/panther/agent/journal"
)

// fakeCache records what the engine asks of the fleet cache.
type fakeCache struct {
	mu       sync.Mutex
	out      string
	outErr   error
	peer     string // Choose's answer
	subErr   error
	calls    []string
	asked    []string // the peers Choose was given
	rollouts []string
}

func (c *fakeCache) note(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, s)
}

func (c *fakeCache) OutPath(context.Context, string) (string, error) {
	c.note("outpath")
	return c.out, c.outErr
}
func (c *fakeCache) Evaluating(r string)  { c.note("evaluating " + r) }
func (c *fakeCache) Building(r, p string) { c.note("building " + r) }
func (c *fakeCache) Done(r, p string, ok bool) {
	if ok {
		c.note("done " + r)
	} else {
		c.note("failed " + r)
	}
}
func (c *fakeCache) Choose(_ context.Context, r, p string, peers []string, _ func(string, ...any)) (string, error) {
	c.note("choose")
	c.asked = peers
	return c.peer, nil
}
func (c *fakeCache) Substitute(_ context.Context, peer, p string, _ func(string)) (int64, error) {
	c.note("substitute " + peer)
	return 123, c.subErr
}

func TestPeersBefore(t *testing.T) {
	for _, tc := range []struct {
		peers []string
		host  string
		want  []string
	}{
		{[]string{"a", "b", "c"}, "a", []string{}},
		{[]string{"a", "b", "c"}, "c", []string{"a", "b"}},
		{[]string{"b"}, "c", []string{"b"}},
	} {
		if got := peersBefore(tc.peers, tc.host); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("peersBefore(%v, %s) = %v, want %v", tc.peers, tc.host, got, tc.want)
		}
	}
}

func TestFleetCacheHook(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cache     *fakeCache
		peers     []string
		expected  bool // the request names its path (the switch after a dry-activate)
		wantCalls []string
		wantFrom  string
	}{
		{"no rollout: untouched", &fakeCache{}, nil, false, nil, ""},
		{"first peer builds", &fakeCache{}, []string{testHost, "b"}, false,
			[]string{"evaluating r", "building r", "done r"}, ""},
		{"substitutes from the peer that has it", &fakeCache{peer: "a"}, []string{"a", testHost}, false,
			[]string{"evaluating r", "choose", "building r", "substitute a", "done r"}, "a"},
		{"no peer has it: builds", &fakeCache{}, []string{"a", testHost}, false,
			[]string{"evaluating r", "choose", "building r", "done r"}, ""},
		{"substitution fails: builds", &fakeCache{peer: "a", subErr: errors.New("hash mismatch")}, []string{"a", testHost}, false,
			[]string{"evaluating r", "choose", "building r", "substitute a", "done r"}, ""},
		{"the deploy's one evaluation gives the out path: the cache evaluates nothing", &fakeCache{outErr: errors.New("evaluated twice")}, []string{"a", testHost}, false,
			[]string{"evaluating r", "choose", "building r", "done r"}, ""},
		{"switch of the dry-activated path: untouched", &fakeCache{peer: "a"}, []string{"a", testHost}, true, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newBareHarness(t)
			h.nix.seed(h.old)
			h.link(h.old)
			c := tc.cache
			c.out = h.new
			h.startWith(func(d *Deps) { d.Cache = c })
			req := switchReq("d1")
			req.Action = ActionBuild
			if tc.peers != nil {
				req.RolloutID, req.BuildPeers = "r", tc.peers
			}
			if tc.expected {
				req.ExpectedPath = h.new
			}
			wantOutcome(t, h.submit(req).result(), journal.StateBuilt)
			c.mu.Lock()
			calls := c.calls
			c.mu.Unlock()
			if strings.Join(calls, ",") != strings.Join(tc.wantCalls, ",") {
				t.Errorf("calls %v, want %v", calls, tc.wantCalls)
			}
			if got := h.record("d1").SubstitutedFrom; got != tc.wantFrom {
				t.Errorf("substitutedFrom %q, want %q", got, tc.wantFrom)
			}
			// A substituted system is valid here: nothing left to build.
			if builds := h.nix.callsWith("build "); (len(builds) == 0) != (tc.wantFrom != "") {
				t.Errorf("nix builds %v with substitutedFrom %q", builds, tc.wantFrom)
			}
		})
	}
}

// pushNix is fakeNix that can copy to another store.
type pushNix struct {
	*fakeNix
	mu     sync.Mutex
	pushed []string
	err    error
}

func (p *pushNix) CopyTo(_ context.Context, uri, storePath string, _ func(string)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed = append(p.pushed, uri+" "+storePath)
	return p.err
}

func TestPushTo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		peer       string // the fleet cache's choice ("" = build here)
		err        error
		wantPushed bool
		wantWarn   string
	}{
		{"the builder pushes", "", nil, true, ""},
		{"a substituting host does not", "a", nil, false, ""},
		{"a failed push is a warning", "", errors.New("no such bucket"), true, "no such bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newBareHarness(t)
			h.nix.seed(h.old)
			h.link(h.old)
			pn := &pushNix{fakeNix: h.nix, err: tc.err}
			c := &fakeCache{out: h.new, peer: tc.peer}
			h.startWith(func(d *Deps) { d.Nix, d.Cache = pn, c })
			req := switchReq("d1")
			req.Action = ActionBuild
			req.RolloutID, req.BuildPeers, req.PushTo = "r", []string{"a", testHost}, "s3://fleet-cache"
			w := h.submit(req)
			wantOutcome(t, w.result(), journal.StateBuilt)
			if got := len(pn.pushed) > 0; got != tc.wantPushed {
				t.Errorf("pushed %v, want %v", pn.pushed, tc.wantPushed)
			}
			if tc.wantPushed && pn.pushed[0] != "s3://fleet-cache "+h.new {
				t.Errorf("pushed %v", pn.pushed)
			}
			warns := strings.Join(w.warnings(), "\n")
			if (tc.wantWarn == "") != (warns == "") || !strings.Contains(warns, tc.wantWarn) {
				t.Errorf("warnings %q, want %q", warns, tc.wantWarn)
			}
		})
	}
}

func TestValidateFleetCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		ok   bool
	}{
		{"none", Request{}, true},
		{"peers", Request{RolloutID: "20261208T000000Z-abc", BuildPeers: []string{"web1", "web-2"}}, true},
		{"push", Request{PushTo: "s3://bucket?region=eu-west-1"}, true},
		{"push option", Request{PushTo: "--option"}, false},
		{"push with space", Request{PushTo: "s3://a b"}, false},
		{"peer with port", Request{RolloutID: "r", BuildPeers: []string{"web1:80"}}, false},
		{"peer option", Request{RolloutID: "r", BuildPeers: []string{"-x"}}, false},
		{"peers without rollout", Request{BuildPeers: []string{"a"}}, false},
		{"rollout with slash", Request{RolloutID: "a/b", BuildPeers: []string{"a"}}, false},
	} {
		if err := validateFleetCache(&tc.req); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
