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
			[]string{"evaluating r", "outpath", "building r", "done r"}, ""},
		{"substitutes from the peer that has it", &fakeCache{peer: "a"}, []string{"a", testHost}, false,
			[]string{"evaluating r", "outpath", "choose", "building r", "substitute a", "done r"}, "a"},
		{"no peer has it: builds", &fakeCache{}, []string{"a", testHost}, false,
			[]string{"evaluating r", "outpath", "choose", "building r", "done r"}, ""},
		{"substitution fails: builds", &fakeCache{peer: "a", subErr: errors.New("hash mismatch")}, []string{"a", testHost}, false,
			[]string{"evaluating r", "outpath", "choose", "building r", "substitute a", "done r"}, ""},
		{"out path fails: builds", &fakeCache{outErr: errors.New("eval")}, []string{"a", testHost}, false,
			[]string{"evaluating r", "outpath", "failed r"}, ""},
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
		})
	}
}
