package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func digestOf(t *testing.T, b []byte) string {
	t.Helper()
	d, err := Digest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStorePut(t *testing.T) {
	data := makeTar(t, file("flake.nix", "{}"), symlink("l", "flake.nix"))
	good := digestOf(t, data)
	other := digestOf(t, []byte("something else"))
	padded := append(append([]byte(nil), data...), make([]byte, 10240)...)

	tests := []struct {
		name    string
		digest  string
		data    []byte
		wantErr error
	}{
		{name: "ok", digest: good, data: data},
		{name: "trailing padding counts in the digest", digest: digestOf(t, padded), data: padded},
		{name: "digest mismatch", digest: other, data: data, wantErr: ErrDigestMismatch},
		{name: "padding changes the digest", digest: good, data: padded, wantErr: ErrDigestMismatch},
		{name: "malformed digest", digest: "md5:abc", data: data, wantErr: ErrBadDigest},
		{name: "uppercase digest", digest: strings.ToUpper(good), data: data, wantErr: ErrBadDigest},
		{name: "bad archive", digest: good, data: makeTar(t, file("../x", "")), wantErr: ErrUnsafePath},
		{name: "too much after the archive", digest: good, data: append(append([]byte(nil), data...), make([]byte, maxTrailing+1)...), wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Store{Dir: filepath.Join(t.TempDir(), "sources")}
			p, err := s.Put(context.Background(), tt.digest, bytes.NewReader(tt.data), Limits{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if s.Has(tt.digest) {
					t.Errorf("Has after failed Put")
				}
				entries, _ := os.ReadDir(s.Dir)
				for _, e := range entries {
					t.Errorf("left behind in store: %s", e.Name())
				}
				return
			}
			want, _ := s.Path(tt.digest)
			if p != want || !s.Has(tt.digest) {
				t.Fatalf("Put = %s, Has = %v; want %s", p, s.Has(tt.digest), want)
			}
			if got := listTree(t, p); !slices.Equal(got, []string{"flake.nix -r--r--r-- {}", "l -> flake.nix"}) {
				t.Errorf("stored tree: %q", got)
			}
			// A second Put of a present tree reads nothing.
			if p2, err := s.Put(context.Background(), tt.digest, errReader{}, Limits{}); err != nil || p2 != p {
				t.Errorf("re-Put = %s, %v", p2, err)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestStorePrune(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	var digests []string
	for i, body := range []string{"one", "two", "three", "four"} {
		data := makeTar(t, file("f", body))
		d := digestOf(t, data)
		p, err := s.Put(context.Background(), d, bytes.NewReader(data), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(int64(1000+i), 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	// Re-putting "one" makes it the most recent.
	if _, err := s.Put(context.Background(), digests[0], errReader{}, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Dir, ".put-stale"), 0o755); err != nil {
		t.Fatal(err)
	}

	removed, err := s.Prune(2)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if want := []string{digests[1], digests[2]}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for i, d := range digests {
		if want := i == 0 || i == 3; s.Has(d) != want {
			t.Errorf("Has(%d) = %v, want %v", i, !want, want)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir, ".put-stale")); err != nil {
		t.Errorf("Prune touched a directory that is not a tree: %v", err)
	}
	if removed, err := (Store{Dir: filepath.Join(s.Dir, "missing")}).Prune(0); err != nil || removed != nil {
		t.Errorf("Prune of a missing store = %q, %v", removed, err)
	}
}

func TestStorePruneNeverRemovesProtected(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	var digests []string
	for i, body := range []string{"running", "two", "three", "newest"} {
		data := makeTar(t, file("f", body))
		d := digestOf(t, data)
		p, err := s.Put(context.Background(), d, bytes.NewReader(data), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(int64(1000+i), 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	removed, err := s.Prune(1, digests[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{digests[1], digests[2]}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	if !s.Has(digests[0]) || !s.Has(digests[3]) {
		t.Error("the protected (oldest) or the newest tree is gone")
	}
}

// TestStoreCleanStaging: an agent killed during an upload left its .put-*
// directory (with a partial tree) for ever.
func TestStoreCleanStaging(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	data := makeTar(t, file("f", "x"))
	d := digestOf(t, data)
	if _, err := s.Put(context.Background(), d, bytes.NewReader(data), Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".put-123", ".put-456/tree/a"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.CleanStaging()
	if err != nil || n != 2 {
		t.Fatalf("CleanStaging = %d, %v; want 2", n, err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 2 || !s.Has(d) || s.Verify(d) != nil {
		t.Errorf("left %v, want only the stored tree and its record", entries)
	}
	if n, err := (Store{Dir: filepath.Join(s.Dir, "missing")}).CleanStaging(); n != 0 || err != nil {
		t.Errorf("CleanStaging of a missing store = %d, %v", n, err)
	}
}

func TestParseDigest(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "ok", in: good, ok: true},
		{name: "no prefix", in: strings.Repeat("ab", 32)},
		{name: "short", in: good[:len(good)-1]},
		{name: "non hex", in: good[:len(good)-1] + "g"},
		{name: "path", in: "sha256:../../../../../../../../../../../../../../../../../../../../etc"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDigest(tt.in)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadDigest)) {
				t.Errorf("ParseDigest(%q) = %v", tt.in, err)
			}
		})
	}
}

// TestStoreVerifyCatchesRootWrites: the agent runs as root, which the
// read-only mode bits of a stored tree do not stop; Verify notices any
// change (a flake.lock written into it, a file changed or removed).
func TestStoreVerifyCatchesRootWrites(t *testing.T) {
	for _, change := range []func(dir string) error{
		func(dir string) error { return os.WriteFile(filepath.Join(dir, "flake.lock"), []byte("{}"), 0o644) },
		func(dir string) error { return os.WriteFile(filepath.Join(dir, "flake.nix"), []byte("{ }"), 0o644) },
		func(dir string) error { return os.Remove(filepath.Join(dir, "flake.nix")) },
		func(dir string) error { return os.Chmod(filepath.Join(dir, "flake.nix"), 0o755) },
	} {
		s := Store{Dir: t.TempDir()}
		var buf bytes.Buffer
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "flake.nix"), []byte("{ outputs = _: { }; }"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Pack(context.Background(), src, &buf)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := s.Put(context.Background(), p.Digest, bytes.NewReader(buf.Bytes()), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(p.Digest); err != nil {
			t.Fatalf("fresh tree: %v", err)
		}
		if info, _ := os.Stat(filepath.Join(dir, "flake.nix")); info.Mode().Perm()&0o222 != 0 {
			t.Errorf("stored file is writable: %v", info.Mode())
		}
		if err := change(dir); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(p.Digest); !errors.Is(err, ErrModified) {
			t.Fatalf("after a change: %v, want ErrModified", err)
		}
		if err := s.Remove(p.Digest); err != nil || s.Has(p.Digest) {
			t.Fatalf("Remove: %v", err)
		}
	}
}
