package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExtractValid(t *testing.T) {
	data := makeTar(t,
		dir("./"),
		file("a.txt", "alpha"),
		ent{name: "bin/run", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o700},
		file("deep/er/x", "x"), // parents implied
		dir("deep/"),           // a directory entry after its implied creation is fine
		symlink("link-to-a", "a.txt"),
		symlink("deep/er/up", "../../a.txt"),
		symlink("dangling", "nowhere/at/all"),
		ent{name: "setuid", typ: tar.TypeReg, body: "s", mode: 0o4777},
	)
	dest := filepath.Join(t.TempDir(), "out")
	st, err := Extract(context.Background(), bytes.NewReader(data), dest, Limits{})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	want := []string{
		"a.txt -rw-r--r-- alpha",
		"bin/ -rwxr-xr-x",
		"bin/run -rwxr-xr-x #!/bin/sh\n",
		"dangling -> nowhere/at/all",
		"deep/ -rwxr-xr-x",
		"deep/er/ -rwxr-xr-x",
		"deep/er/up -> ../../a.txt",
		"deep/er/x -rw-r--r-- x",
		"link-to-a -> a.txt",
		"setuid -rwxr-xr-x s",
	}
	if got := listTree(t, dest); !slices.Equal(got, want) {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if wantSt := (Stats{Files: 4, Dirs: 3, Symlinks: 3, Bytes: 17}); st != wantSt {
		t.Errorf("stats = %+v, want %+v", st, wantSt)
	}
	info, err := os.Stat(dest)
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("dest mode: %v %v", info.Mode(), err)
	}
}

func TestExtractRefuses(t *testing.T) {
	valid := makeTar(t, file("a", strings.Repeat("A", 1000)), file("b", "bee"))
	tests := []struct {
		name    string
		data    []byte
		lim     Limits
		wantErr error
		wantIn  string // substring of the error (the entry name)
	}{
		{name: "traversal", data: makeTar(t, file("../evil", "x")), wantErr: ErrUnsafePath, wantIn: "../evil"},
		{name: "nested traversal", data: makeTar(t, file("a/../../evil", "x")), wantErr: ErrUnsafePath, wantIn: "a/../../evil"},
		{name: "absolute path", data: makeTar(t, file("/tmp/evil", "x")), wantErr: ErrUnsafePath, wantIn: "/tmp/evil"},
		{name: "absolute symlink", data: makeTar(t, symlink("etc", "/etc")), wantErr: ErrSymlinkEscape, wantIn: "etc"},
		{name: "relative symlink escape", data: makeTar(t, symlink("up", "../outside")), wantErr: ErrSymlinkEscape, wantIn: "up"},
		{name: "deep symlink escape", data: makeTar(t, symlink("a/b/c", "../../../x")), wantErr: ErrSymlinkEscape, wantIn: "a/b/c"},
		{name: "empty symlink target", data: makeTar(t, symlink("e", "")), wantErr: ErrSymlinkEscape, wantIn: `"e"`},
		{
			name:    "file through symlinked dir",
			data:    makeTar(t, symlink("d", "."), file("d/x", "x")),
			wantErr: ErrUnsafePath, wantIn: "d/x",
		},
		{
			name:    "file through escaping symlinked dir",
			data:    makeTar(t, symlink("d", "/tmp"), file("d/x", "x")),
			wantErr: ErrSymlinkEscape, wantIn: `"d"`,
		},
		{
			name:    "symlink chain escape",
			data:    makeTar(t, symlink("d1/up", ".."), symlink("e", "d1/up/..")),
			wantErr: ErrSymlinkEscape, wantIn: `"e"`,
		},
		{
			name:    "symlink chain completed by a later entry",
			data:    makeTar(t, symlink("e", "d1/up/.."), symlink("d1/up", "..")),
			wantErr: ErrSymlinkEscape, wantIn: `"e"`,
		},
		{name: "symlink loop", data: makeTar(t, symlink("a", "b"), symlink("b", "a/x")), wantErr: ErrSymlinkEscape},
		{name: "char device", data: makeTar(t, ent{name: "null", typ: tar.TypeChar, mode: 0o666}), wantErr: ErrUnsupportedType, wantIn: "null"},
		{name: "block device", data: makeTar(t, ent{name: "sda", typ: tar.TypeBlock, mode: 0o660}), wantErr: ErrUnsupportedType, wantIn: "sda"},
		{name: "fifo", data: makeTar(t, ent{name: "pipe", typ: tar.TypeFifo, mode: 0o644}), wantErr: ErrUnsupportedType, wantIn: "pipe"},
		{name: "hard link", data: makeTar(t, file("a", "x"), ent{name: "h", typ: tar.TypeLink, link: "a"}), wantErr: ErrUnsupportedType, wantIn: `"h"`},
		{name: "gnu sparse file", data: makeTar(t, ent{name: "holes", typ: tar.TypeGNUSparse, mode: 0o644}), wantErr: ErrUnsupportedType, wantIn: "holes"},
		{name: "hard link outside", data: makeTar(t, ent{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}), wantErr: ErrUnsupportedType},
		{name: "duplicate file", data: makeTar(t, file("a", "1"), file("a", "2")), wantErr: ErrUnsafePath, wantIn: `"a"`},
		{name: "file then child", data: makeTar(t, file("a", "1"), file("a/b", "2")), wantErr: ErrUnsafePath, wantIn: "a/b"},
		{name: "symlink replaces dir", data: makeTar(t, dir("a/"), symlink("a", ".")), wantErr: ErrUnsafePath},
		{
			name:    "size claim beyond limit",
			data:    makeTar(t, ent{name: "bomb", typ: tar.TypeReg, mode: 0o644, size: 2 << 20}),
			lim:     Limits{MaxBytes: 1 << 20},
			wantErr: ErrTooLarge, wantIn: "bomb",
		},
		{
			name:    "total content beyond limit",
			data:    makeTar(t, file("a", strings.Repeat("a", 600)), file("b", strings.Repeat("b", 600))),
			lim:     Limits{MaxBytes: 1000},
			wantErr: ErrTooLarge, wantIn: `"b"`,
		},
		{
			name:    "too many entries",
			data:    makeTar(t, dir("d/"), file("d/1", ""), file("d/2", ""), file("d/3", "")),
			lim:     Limits{MaxFiles: 3},
			wantErr: ErrTooLarge, wantIn: "d/3",
		},
		{
			// Implied parents count: ten files each implying 1,000
			// directories must not create 10,000 directories under a limit
			// of 10 entries.
			name:    "implied parents beyond limit",
			data:    makeTar(t, file(strings.Repeat("d/", 1000)+"f", "")),
			lim:     Limits{MaxFiles: 10, MaxDepth: 2000},
			wantErr: ErrTooLarge, wantIn: "implies",
		},
		{
			name:    "implied parents add up",
			data:    makeTar(t, file("a/b/c/f", ""), file("x/y/z/f", "")),
			lim:     Limits{MaxFiles: 6},
			wantErr: ErrTooLarge, wantIn: "x/y/z/f",
		},
		{
			name:    "name too long",
			data:    makeTar(t, file(strings.Repeat("n", 200), "")),
			lim:     Limits{MaxNameLen: 100},
			wantErr: ErrTooLarge, wantIn: "200 bytes",
		},
		{
			name:    "name too deep",
			data:    makeTar(t, file(strings.Repeat("a/", 8000)+"f", "")),
			lim:     Limits{MaxNameLen: 1 << 20},
			wantErr: ErrTooLarge, wantIn: "8001 components",
		},
		{
			name:    "symlink target too long",
			data:    makeTar(t, symlink("l", strings.Repeat("./", 100)+"x")),
			lim:     Limits{MaxNameLen: 100},
			wantErr: ErrTooLarge, wantIn: "symlink target",
		},
		{name: "truncated in content", data: valid[:512+300], wantErr: ErrTruncated},
		{name: "truncated in header", data: valid[:200], wantErr: ErrTruncated},
		{name: "truncated at entry boundary", data: valid[:512+1024], wantErr: ErrTruncated},
		{name: "missing second zero block", data: valid[:len(valid)-512], wantErr: ErrTruncated},
		{name: "empty stream", data: nil, wantErr: ErrTruncated},
		{name: "garbage", data: bytes.Repeat([]byte("not a tar "), 100), wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			_, err := Extract(context.Background(), bytes.NewReader(tt.data), dest, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Extract error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantIn != "" && !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not name %q", err, tt.wantIn)
			}
			assertEmptyDir(t, parent)
		})
	}
}

func TestExtractDestExists(t *testing.T) {
	dest := t.TempDir()
	_, err := Extract(context.Background(), bytes.NewReader(makeTar(t, file("a", "x"))), dest, Limits{})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Extract into existing dir: %v, want ErrExists", err)
	}
}

func TestExtractCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	_, err := Extract(ctx, bytes.NewReader(makeTar(t, file("a", "x"))), filepath.Join(parent, "out"), Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract with canceled context: %v", err)
	}
	assertEmptyDir(t, parent)
}

// TestExtractDeepIsLinear: a name 8,000 components deep (allowed here by
// raised limits) took 2 min 14 s when every implied parent was created by
// walking the path from the root; through open handles it is linear.
func TestExtractDeepIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 8,000 nested directories")
	}
	const depth = 8000
	data := makeTar(t, file(strings.Repeat("a/", depth)+"f", "x"), file(strings.Repeat("a/", depth)+"g", "y"))
	start := time.Now()
	st, err := Extract(context.Background(), bytes.NewReader(data), filepath.Join(t.TempDir(), "out"),
		Limits{MaxDepth: depth + 1, MaxNameLen: 3 * depth})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dirs != depth || st.Files != 2 {
		t.Errorf("stats = %+v, want %d dirs and 2 files", st, depth)
	}
	t.Logf("depth %d: %v", depth, elapsed)
	if elapsed > 20*time.Second {
		t.Errorf("extracting a %d-deep name took %v", depth, elapsed)
	}
}

// TestExtractStopsWhenCanceledMidStream: the client hanging up (ctx done
// while the stream is read) stops Extract at the next entry.
func TestExtractStopsWhenCanceledMidStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := makeTar(t, file(strings.Repeat("d/", 100)+"f", "x"))
	data := makeTar(t, file(strings.Repeat("d/", 100)+"f", "x"), file("g", "y"))
	r := &cancelAfter{r: bytes.NewReader(data), n: len(first) - 1024, cancel: cancel}
	parent := t.TempDir()
	_, err := Extract(ctx, r, filepath.Join(parent, "out"), Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract after the client hung up: %v, want context.Canceled", err)
	}
	assertEmptyDir(t, parent)
}

// cancelAfter calls cancel once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// assertEmptyDir fails unless dir holds nothing: no partial tree, no temp.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}
