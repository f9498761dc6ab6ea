package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/archive"
)

func tarOf(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "flake.nix", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return buf.Bytes()
}

// TestSourceStorePolicy: the source store never shrank (Prune had no
// caller) and interrupted uploads left .put-* directories for ever. At start
// and after each upload the agent now keeps the keepSources newest sources
// and every source of an unfinished deployment, and start clears staging.
func TestSourceStorePolicy(t *testing.T) {
	state := t.TempDir()
	j, err := journal.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	s := sourceStore{Store: archive.Store{Dir: filepath.Join(state, "sources")}, j: j, log: hclog.NewNullLogger()}
	var digests []string
	for i := range keepSources + 3 {
		data := tarOf(t, fmt.Sprint(i))
		d, _ := archive.Digest(bytes.NewReader(data))
		p, err := s.Store.Put(context.Background(), d, bytes.NewReader(data), archive.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(int64(1000+i), 0)
		os.Chtimes(p, mt, mt)
		digests = append(digests, d)
	}
	// The oldest source belongs to a deployment awaiting confirmation.
	if err := j.Create(&journal.Record{ID: "d1", Action: "switch", Host: "alpha", State: journal.StateAwaiting, SourceDigest: digests[0]}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, ".put-crashed", "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.start()
	if _, err := os.Stat(filepath.Join(s.Dir, ".put-crashed")); !os.IsNotExist(err) {
		t.Errorf("staging of an interrupted upload survived start: %v", err)
	}
	if !s.Has(digests[0]) {
		t.Error("pruned the source of a deployment awaiting confirmation")
	}
	for i, d := range digests[1:] {
		if want := i+1 >= 3; s.Has(d) != want {
			t.Errorf("source %d present = %v, want %v", i+1, !want, want)
		}
	}
	// An upload prunes too: the newest stays, the oldest unprotected goes.
	data := tarOf(t, "new")
	d, _ := archive.Digest(bytes.NewReader(data))
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), archive.Limits{}); err != nil {
		t.Fatal(err)
	}
	if !s.Has(d) || s.Has(digests[3]) || !s.Has(digests[0]) {
		t.Errorf("after an upload: new %v, oldest unprotected %v, protected %v", s.Has(d), s.Has(digests[3]), s.Has(digests[0]))
	}
}
