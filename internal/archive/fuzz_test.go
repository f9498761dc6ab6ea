package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to Extract and checks that nothing is
// ever created outside dest, that a failed Extract leaves nothing at all, and
// that no symlink of a successful one resolves outside dest.
func FuzzExtract(f *testing.F) {
	seeds := [][]byte{
		makeTar(f, dir("d/"), file("d/a", "a"), symlink("d/l", "a"), symlink("up", "d/..")),
		makeTar(f, file("../evil", "x")),
		makeTar(f, file("/abs", "x")),
		makeTar(f, symlink("l", "/etc"), file("l/passwd", "x")),
		makeTar(f, symlink("d", "."), file("d/x", "x")),
		makeTar(f, symlink("e", "d1/up/.."), symlink("d1/up", "..")),
		makeTar(f, symlink("a", "b"), symlink("b", "a")),
		makeTar(f, file("a", "1"), ent{name: "h", typ: tar.TypeLink, link: "a"}),
		makeTar(f, ent{name: "p", typ: tar.TypeFifo}),
		makeTar(f, file("big", strings.Repeat("x", 5000))),
		makeTar(f, file(strings.Repeat("long/", 40)+"name", "deep")),
		nil,
		[]byte("not a tar"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkExtractContained(t, data)
	})
}

// FuzzExtractEntries builds well-formed tars from a line script ("f NAME",
// "d NAME", "l NAME TARGET", "h NAME TARGET") so the fuzzer works on entry
// names and symlink targets, where escapes hide, rather than on tar syntax.
func FuzzExtractEntries(f *testing.F) {
	for _, s := range []string{
		"d d\nf d/a\nl d/l a\nl up d/..",
		"l d .\nf d/x",
		"l e d1/up/..\nl d1/up ..",
		"l a b\nl b a/x",
		"l x y/../..\nd y",
		"f ./a/./b\nl a/c ../b",
		"l s sub\nd sub\nl sub/t ../../x",
		"h h /etc/passwd",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		var ents []ent
		for _, line := range strings.Split(script, "\n") {
			op, rest, _ := strings.Cut(line, " ")
			name, target, _ := strings.Cut(rest, " ")
			if name == "" || len(ents) > 50 {
				continue
			}
			switch op {
			case "f":
				ents = append(ents, file(name, "x"))
			case "d":
				ents = append(ents, dir(name))
			case "l":
				ents = append(ents, symlink(name, target))
			case "h":
				ents = append(ents, ent{name: name, typ: tar.TypeLink, link: target})
			}
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range ents {
			hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
			if e.typ != tar.TypeReg {
				hdr.Size = 0
			}
			if tw.WriteHeader(hdr) != nil {
				return // names tar cannot hold
			}
			if hdr.Size > 0 {
				_, _ = tw.Write([]byte(e.body))
			}
		}
		if tw.Close() != nil {
			return
		}
		checkExtractContained(t, buf.Bytes())
	})
}

// checkExtractContained extracts data and fails if anything was created
// outside dest, if a failed Extract left anything, or if a symlink of a
// successful one resolves outside dest.
func checkExtractContained(t *testing.T, data []byte) {
	t.Helper()
	outer := t.TempDir()
	parent := filepath.Join(outer, "parent")
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(parent, "dest")
	_, err := Extract(context.Background(), bytes.NewReader(data), dest, Limits{MaxBytes: 1 << 20, MaxFiles: 200})

	// Nothing beside parent, nothing beside dest.
	for _, d := range []string{outer, parent} {
		entries, rerr := os.ReadDir(d)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, e := range entries {
			if !(d == outer && e.Name() == "parent") && !(d == parent && e.Name() == "dest" && err == nil) {
				t.Fatalf("created outside dest: %s (extract error %v)", filepath.Join(d, e.Name()), err)
			}
		}
	}
	if err != nil {
		return
	}
	realDest, _ := filepath.EvalSymlinks(dest)
	_ = filepath.Walk(dest, func(p string, info os.FileInfo, werr error) error {
		if werr != nil || info.Mode()&os.ModeSymlink == 0 {
			return nil
		}
		resolved, rerr := filepath.EvalSymlinks(p)
		if rerr != nil {
			return nil // dangling or looping: cannot reach outside
		}
		if resolved != realDest && !strings.HasPrefix(resolved, realDest+string(filepath.Separator)) {
			t.Fatalf("symlink %s resolves outside dest to %s", p, resolved)
		}
		return nil
	})
}
