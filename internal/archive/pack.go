package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Packed describes one archive written by Pack.
type Packed struct {
	// Digest is "sha256:<hex>" of the tar bytes written.
	Digest string
	// Files counts regular files and symlinks (directories not included).
	Files int
	// Bytes is the length of the tar stream written.
	Bytes int64
	// Subdir is the packed directory relative to the archive root, in slash
	// form: "" outside git or at the repository root, else the path of dir
	// inside its repository. The flake to build is <extracted>/<Subdir>.
	Subdir string
	// Untracked lists files of the repository (relative to its root) that
	// git neither tracks nor ignores: Nix does not see them, so they were
	// not packed. Empty outside git.
	Untracked []string
}

// Packer packs directories; the zero value uses the real git.
type Packer struct {
	// Git answers which files a repository tracks. Default (nil): ExecGit{}.
	Git Git
}

// Pack packs dir into w with the real git; see Packer.Pack.
func Pack(ctx context.Context, dir string, w io.Writer) (Packed, error) {
	return Packer{}.Pack(ctx, dir, w)
}

// Pack writes the source tree of dir to w as a deterministic tar: entries
// sorted by name, zero times and owners, modes 0644/0755 (symlinks 0777),
// symlinks kept as symlinks, so the same tree always gives the same bytes.
//
// Inside a git work tree it packs what Nix would see of the repository: the
// tracked files as they are in the work tree (uncommitted changes included,
// files deleted on disk and submodules left out) from the repository root,
// and lists untracked files in Packed.Untracked. Elsewhere it packs every
// file, directory and symlink under dir. Symlinks that would escape the
// tree and special files are refused, as Extract would refuse them.
func (p Packer) Pack(ctx context.Context, dir string, w io.Writer) (Packed, error) {
	g := p.Git
	if g == nil {
		g = ExecGit{}
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return Packed{}, fmt.Errorf("pack %s: %w", dir, err)
	}
	var (
		root string
		t    tree
		res  Packed
	)
	top, err := g.TopLevel(ctx, absDir)
	switch {
	case errors.Is(err, ErrNotRepo):
		// Walk the real directory even when dir is a symlink to it.
		if root, err = filepath.EvalSymlinks(absDir); err == nil {
			t, err = scanDir(ctx, root)
		}
	case err != nil:
		return Packed{}, fmt.Errorf("pack %s: %w", dir, err)
	default:
		root = top
		res.Subdir, err = subdirOf(top, absDir)
		if err == nil {
			t, res.Untracked, err = scanGit(ctx, g, root)
		}
	}
	if err != nil {
		return Packed{}, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := t.checkAllLinks(); err != nil {
		return Packed{}, fmt.Errorf("pack %s: %w", dir, err)
	}

	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	if res.Files, err = writeTar(ctx, cw, root, t); err != nil {
		return Packed{}, fmt.Errorf("pack %s: %w", dir, err)
	}
	res.Bytes = cw.n
	res.Digest = formatDigest(h)
	return res, nil
}

// subdirOf returns dir relative to top in slash form; "" when equal. Both
// are resolved through symlinks first, as git reports the real top level.
func subdirOf(top, dir string) (string, error) {
	realTop, err := filepath.EvalSymlinks(top)
	if err != nil {
		return "", err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(realTop, realDir)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", nil
	}
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside its work tree %s", dir, top)
	}
	return filepath.ToSlash(rel), nil
}

// scanDir collects every entry under root.
func scanDir(ctx context.Context, root string) (tree, error) {
	t := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		return t.addOnDisk(root, rel, info)
	})
	return t, err
}

// scanGit collects the tracked files present on disk, and the untracked
// ones that are not ignored.
func scanGit(ctx context.Context, g Git, root string) (tree, []string, error) {
	tracked, err := g.LsFiles(ctx, root, "--cached")
	if err != nil {
		return nil, nil, err
	}
	untracked, err := g.LsFiles(ctx, root, "--others", "--exclude-standard")
	if err != nil {
		return nil, nil, err
	}
	t := tree{}
	for _, rel := range tracked {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		name, err := cleanName(rel)
		if err != nil || name == "" {
			return nil, nil, fmt.Errorf("git listed %q: %w", rel, ErrUnsafePath)
		}
		info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree: Nix does not see it either
		}
		if err != nil {
			return nil, nil, err
		}
		if info.IsDir() {
			continue // a submodule; Nix leaves them out unless asked
		}
		if err := t.addOnDisk(root, name, info); err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(untracked)
	return t, untracked, nil
}

// addOnDisk records one entry found on disk, with its parents.
func (t tree) addOnDisk(root, rel string, info fs.FileInfo) error {
	var n node
	switch m := info.Mode(); {
	case m.IsRegular():
		n.kind = kindFile
	case m.IsDir():
		n.kind = kindDir
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		n = node{kind: kindSymlink, target: target}
	default:
		return fmt.Errorf("%q: mode %v: %w", rel, m, ErrUnsupportedType)
	}
	t.addParents(rel)
	t[rel] = n
	return nil
}

// writeTar writes the entries of t in name order and returns how many
// files and symlinks it wrote.
func writeTar(ctx context.Context, w io.Writer, root string, t tree) (int, error) {
	names := make([]string, 0, len(t))
	for name := range t {
		names = append(names, name)
	}
	// Byte order puts every directory before its contents ("a" < "a/b").
	sort.Strings(names)
	tw := tar.NewWriter(w)
	files := 0
	lim := Limits{}.withDefaults() // refuse here what the agent would refuse
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := t[name]
		raw := name
		if n.kind == kindDir {
			raw += "/"
		}
		if err := lim.checkNameLen(raw); err != nil {
			return 0, err
		}
		if err := lim.checkDepth(name); err != nil {
			return 0, err
		}
		if n.kind == kindSymlink && len(n.target) > lim.MaxNameLen {
			return 0, fmt.Errorf("%q: symlink target of %d bytes over the %d byte limit: %w", name, len(n.target), lim.MaxNameLen, ErrTooLarge)
		}
		hdr := &tar.Header{
			Name:    name,
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		disk := filepath.Join(root, filepath.FromSlash(name))
		switch n.kind {
		case kindDir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return 0, err
			}
		case kindSymlink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, n.target, 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return 0, err
			}
			files++
		case kindFile:
			if err := writeFile(tw, hdr, disk); err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			files++
		}
	}
	return files, tw.Close()
}

func writeFile(tw *tar.Writer, hdr *tar.Header, disk string) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("changed type while packing: %w", ErrUnsupportedType)
	}
	hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
	if info.Mode()&0o111 != 0 {
		hdr.Mode = 0o755
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("file shrank while packing: %w", err)
		}
		return err
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
