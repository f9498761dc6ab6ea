package server

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/archive"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// oneSource is a Sources holding one digest at /src.
type oneSource struct{ digest string }

func (o oneSource) Has(d string) bool { return d == o.digest }
func (o oneSource) Path(string) (string, error) {
	return "/src", nil
}
func (o oneSource) Put(context.Context, string, io.Reader, archive.Limits) (string, error) {
	return "", errors.New("read-only")
}

// TestFlakeRefRefusesFlakeSyntaxInSubdir: a subdir with "?" or "#" went
// into the path: reference, where nix reads a query or an attribute.
func TestFlakeRefRefusesFlakeSyntaxInSubdir(t *testing.T) {
	d := "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	s := New(Config{Host: "alpha", Sources: oneSource{digest: d}})
	for _, sub := range []string{"hosts?dir=other", "hosts#evil", "../up", "/abs"} {
		if ref, err := s.flakeRef(context.Background(), &agentv1.Intent{SourceDigest: d, SourceSubdir: sub}); !errors.Is(err, deploy.ErrInvalidRequest) {
			t.Errorf("subdir %q: ref %q, err %v; want ErrInvalidRequest", sub, ref, err)
		}
	}
	if ref, err := s.flakeRef(context.Background(), &agentv1.Intent{SourceDigest: d, SourceSubdir: "hosts/web"}); err != nil || ref != "path:/src/hosts/web" {
		t.Errorf("plain subdir: %q, %v", ref, err)
	}
}
