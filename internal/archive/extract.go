package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Default limits applied by Extract when a Limits field is zero.
const (
	DefaultMaxBytes int64 = 1 << 30
	DefaultMaxFiles int   = 100000
	// DefaultMaxNameLen is Linux's PATH_MAX: no longer name can be opened
	// in one system call anyway.
	DefaultMaxNameLen int = 4096
	// DefaultMaxDepth is far deeper than any source tree needs (the deepest
	// node_modules trees stay well under 100) and keeps the work per entry
	// small.
	DefaultMaxDepth int = 256
)

// Limits bound what Extract accepts from one archive.
type Limits struct {
	// MaxBytes is the total size of file contents, counted as they are
	// written (not only as headers claim). Default (0): DefaultMaxBytes, 1 GiB.
	MaxBytes int64
	// MaxFiles is the number of entries of any type (files, directories,
	// symlinks), counting the parent directories that entry names imply
	// without an entry of their own. Default (0): DefaultMaxFiles, 100000.
	MaxFiles int
	// MaxNameLen is the length in bytes of an entry name and of a symlink
	// target. Default (0): DefaultMaxNameLen, 4096.
	MaxNameLen int
	// MaxDepth is the number of components of an entry name ("a/b/c" is 3).
	// Default (0): DefaultMaxDepth, 256.
	MaxDepth int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = DefaultMaxNameLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// checkNameLen refuses with ErrTooLarge an entry name longer than
// MaxNameLen bytes, naming only its start.
func (l Limits) checkNameLen(name string) error {
	if len(name) > l.MaxNameLen {
		return fmt.Errorf("%q...: name of %d bytes over the %d byte limit: %w", name[:64], len(name), l.MaxNameLen, ErrTooLarge)
	}
	return nil
}

// checkDepth refuses with ErrTooLarge a clean name of more than MaxDepth
// components.
func (l Limits) checkDepth(name string) error {
	if d := strings.Count(name, "/") + 1; d > l.MaxDepth {
		short := name
		if len(short) > 64 {
			short = short[:64] + "..."
		}
		return fmt.Errorf("%q: %d components deep, over the limit of %d: %w", short, d, l.MaxDepth, ErrTooLarge)
	}
	return nil
}

// streamLimit bounds the raw tar bytes read: the content budget plus a
// generous allowance per entry for headers, long-name records and padding.
func (l Limits) streamLimit() int64 {
	return l.MaxBytes + int64(l.MaxFiles)*8<<10 + 1<<20
}

// Stats describes what Extract wrote.
type Stats struct {
	Files    int   // regular files
	Dirs     int   // directories, including implied parents
	Symlinks int   // symbolic links
	Bytes    int64 // bytes of file content
}

// Extract unpacks the tar stream r into dest, which must not exist yet. It
// writes into a temporary directory beside dest and renames it into place
// only when the whole archive was valid, so on any error nothing is left at
// dest. The work per entry is linear in its name (directories are created
// through open handles, never by walking the path again) and Extract stops
// at the next entry, or the next read, once ctx is done. Entries are refused with ErrUnsafePath, ErrSymlinkEscape,
// ErrUnsupportedType, ErrTooLarge or ErrTruncated, wrapped with the entry
// name. Modes are normalized (0644/0755 files, 0755 directories); owners and
// times are not restored. Extract stops reading at the end-of-archive marker.
func Extract(ctx context.Context, r io.Reader, dest string, lim Limits) (Stats, error) {
	lim = lim.withDefaults()
	dest = filepath.Clean(dest)
	if _, err := os.Lstat(dest); err == nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".extract-")
	if err != nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()

	root, err := os.OpenRoot(tmp)
	if err != nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	x := &extractor{root: root, lim: lim, tree: tree{}}
	st, err := x.run(ctx, r)
	x.setDir("", nil)
	if cerr := root.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return Stats{}, fmt.Errorf("extract to %s: %w", dest, err)
	}
	ok = true
	return st, nil
}

// extractor holds the state of one Extract call.
type extractor struct {
	root  *os.Root
	lim   Limits
	tree  tree
	st    Stats
	count int // entries seen, of any type, and implied parents

	// The last directory written into stays open: archives list a
	// directory's entries together, so most entries need no path walk.
	dirName string   // clean name of dir ("" is the root)
	dir     *os.Root // nil: none open other than root
}

func (x *extractor) run(ctx context.Context, r io.Reader) (Stats, error) {
	cr := &countingReader{ctx: ctx, r: r, limit: x.lim.streamLimit()}
	tr := tar.NewReader(cr)
	for {
		afterEntry := cr.n
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// The tar reader also reports a clean EOF when the stream stops
			// exactly between two entries: insist on the two zero blocks
			// that end every archive.
			if cr.n-afterEntry < 2*512 || cr.zeroRun < 2*512 {
				return x.st, fmt.Errorf("missing end-of-archive marker: %w", ErrTruncated)
			}
			break
		}
		if err != nil {
			name := ""
			if hdr != nil {
				name = hdr.Name
			}
			return x.st, x.streamErr(cr, name, err)
		}
		if err := x.entry(ctx, cr, tr, hdr); err != nil {
			return x.st, err
		}
	}
	if err := x.tree.checkAllLinks(); err != nil {
		return x.st, err
	}
	return x.st, nil
}

// streamErr maps a read failure to the sentinel that explains it.
func (x *extractor) streamErr(cr *countingReader, name string, err error) error {
	switch {
	case cr.err != nil:
		return fmt.Errorf("%q: %w", name, cr.err)
	case errors.Is(err, tar.ErrInsecurePath):
		return fmt.Errorf("%q: %w", name, ErrUnsafePath)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, tar.ErrHeader),
		errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, io.EOF):
		return fmt.Errorf("%q: %v: %w", name, err, ErrTruncated)
	}
	return fmt.Errorf("%q: %w", name, err)
}

func (x *extractor) entry(ctx context.Context, cr *countingReader, tr *tar.Reader, hdr *tar.Header) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var k kind
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // archive-wide metadata (git archive writes one); nothing to create
	case tar.TypeReg: // the reader already turned legacy TypeRegA into TypeReg or TypeDir
		k = kindFile
	case tar.TypeDir:
		k = kindDir
	case tar.TypeSymlink:
		k = kindSymlink
	default:
		return fmt.Errorf("%q: type %q: %w", hdr.Name, hdr.Typeflag, ErrUnsupportedType)
	}
	for key := range hdr.PAXRecords {
		if strings.HasPrefix(key, "GNU.sparse.") {
			return fmt.Errorf("%q: sparse file: %w", hdr.Name, ErrUnsupportedType)
		}
	}
	x.count++
	if x.count > x.lim.MaxFiles {
		return fmt.Errorf("%q: more than %d entries: %w", hdr.Name, x.lim.MaxFiles, ErrTooLarge)
	}
	if err := x.lim.checkNameLen(hdr.Name); err != nil {
		return err
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if k != kindDir {
			return fmt.Errorf("%q: root entry is not a directory: %w", hdr.Name, ErrUnsafePath)
		}
		return nil
	}
	if err := x.lim.checkDepth(name); err != nil {
		return err
	}
	parents, err := x.tree.missingParents(name)
	if err != nil {
		return err
	}
	if prev, ok := x.tree[name]; ok {
		if prev.kind == kindDir && k == kindDir {
			return nil
		}
		return fmt.Errorf("%q: duplicate entry: %w", hdr.Name, ErrUnsafePath)
	}
	x.count += len(parents)
	if x.count > x.lim.MaxFiles {
		return fmt.Errorf("%q: more than %d entries with the %d directories it implies: %w",
			hdr.Name, x.lim.MaxFiles, len(parents), ErrTooLarge)
	}
	if k == kindSymlink && len(hdr.Linkname) > x.lim.MaxNameLen {
		return fmt.Errorf("%q: symlink target of %d bytes over the %d byte limit: %w",
			hdr.Name, len(hdr.Linkname), x.lim.MaxNameLen, ErrTooLarge)
	}
	dir, err := x.parentDir(ctx, name, parents)
	if err != nil {
		return fmt.Errorf("%q: %w", hdr.Name, err)
	}
	base := path.Base(name)
	switch k {
	case kindDir:
		x.tree[name] = node{kind: kindDir}
		if err := x.mkdir(dir, base); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
	case kindSymlink:
		x.tree[name] = node{kind: kindSymlink, target: hdr.Linkname}
		if err := x.tree.checkLink(name); err != nil {
			return err
		}
		if err := dir.Symlink(hdr.Linkname, base); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
		x.st.Symlinks++
	case kindFile:
		x.tree[name] = node{kind: kindFile}
		if err := x.file(cr, tr, hdr, dir, base); err != nil {
			return err
		}
		x.st.Files++
	}
	return nil
}

// parentDir returns an open handle on the directory that holds name,
// first creating parents (the missing ones, shortest first, as
// missingParents gives them) each through the handle of the one before.
// The handle belongs to x (see setDir).
func (x *extractor) parentDir(ctx context.Context, name string, parents []string) (*os.Root, error) {
	want := path.Dir(name)
	if want == "." {
		want = ""
	}
	if want == x.dirName {
		return x.current(), nil
	}
	start := want
	if len(parents) > 0 {
		start = path.Dir(parents[0])
		if start == "." {
			start = ""
		}
	}
	// One walk from the root to the deepest directory that exists.
	var d *os.Root
	if start == "" {
		d = x.root
	} else {
		var err error
		if d, err = x.root.OpenRoot(start); err != nil {
			return nil, err
		}
	}
	x.setDir(start, d)
	for _, p := range parents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		base := path.Base(p)
		if err := x.mkdir(d, base); err != nil {
			return nil, err
		}
		x.tree[p] = node{kind: kindDir}
		next, err := d.OpenRoot(base)
		if err != nil {
			return nil, err
		}
		x.setDir(p, next)
		d = next
	}
	return d, nil
}

// current returns the open handle of x.dirName.
func (x *extractor) current() *os.Root {
	if x.dir == nil {
		return x.root
	}
	return x.dir
}

// setDir makes d (the handle of dir; nil or x.root for the root) the
// current directory, closing the one before.
func (x *extractor) setDir(dir string, d *os.Root) {
	if x.dir != nil && x.dir != d {
		_ = x.dir.Close()
	}
	if d == x.root {
		d = nil
	}
	x.dirName, x.dir = dir, d
}

// mkdir creates the directory base in dir with mode 0755 whatever the umask.
func (x *extractor) mkdir(dir *os.Root, base string) error {
	if err := dir.Mkdir(base, 0o755); err != nil {
		return err
	}
	x.st.Dirs++
	return dir.Chmod(base, 0o755)
}

func (x *extractor) file(cr *countingReader, tr *tar.Reader, hdr *tar.Header, dir *os.Root, base string) error {
	remaining := x.lim.MaxBytes - x.st.Bytes
	if hdr.Size > remaining {
		return fmt.Errorf("%q: %d bytes over the %d byte budget: %w", hdr.Name, hdr.Size, x.lim.MaxBytes, ErrTooLarge)
	}
	mode := os.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := dir.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("%q: %w", hdr.Name, err)
	}
	// Count what is really written: a header may understate what follows
	// (sparse maps, lying sizes), so the copy itself is bounded.
	n, err := io.Copy(f, io.LimitReader(tr, remaining+1))
	x.st.Bytes += n
	if err == nil {
		err = f.Chmod(mode) // umask may have narrowed it; set it exactly
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return x.streamErr(cr, hdr.Name, err)
	}
	if n > remaining {
		return fmt.Errorf("%q: content over the %d byte budget: %w", hdr.Name, x.lim.MaxBytes, ErrTooLarge)
	}
	return nil
}

// countingReader counts the raw bytes read, remembers how many zero bytes
// end them (to recognise the end-of-archive marker), stops at a byte limit
// and honours ctx.
type countingReader struct {
	ctx     context.Context
	r       io.Reader
	limit   int64
	n       int64
	zeroRun int64
	err     error // a limit or context error, reported in preference to the tar reader's
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	if c.n >= c.limit {
		c.err = fmt.Errorf("stream longer than %d bytes: %w", c.limit, ErrTooLarge)
		return 0, c.err
	}
	if rest := c.limit - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	// Only the zeros at the end matter: scan backwards to the last non-zero.
	i := n - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i < 0 {
		c.zeroRun += int64(n)
	} else {
		c.zeroRun = int64(n - 1 - i)
	}
	return n, err
}
