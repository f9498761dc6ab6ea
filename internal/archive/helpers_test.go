package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }

// ent is one hand-made tar entry for tests.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	size int64 // header size when it must differ from len(body); 0: len(body)
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}

// makeTar writes entries as a tar, exactly as given (no cleaning or checks).
func makeTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: size, Format: tar.FormatPAX}
		if e.typ == tar.TypeGNUSparse {
			hdr.Format = tar.FormatGNU
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil && e.size == 0 {
				t.Fatalf("tar body %q: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatalf("tar close: %v", err)
	}
	return buf.Bytes()
}

// listTree returns "path type [target|content]" lines for everything under
// dir, sorted, to compare trees as text.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch m := info.Mode(); {
		case m&os.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			out = append(out, rel+" -> "+to)
		case m.IsDir():
			out = append(out, rel+"/ "+m.Perm().String())
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" "+m.Perm().String()+" "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
