package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrModified: a stored tree no longer matches what was extracted (a file
// was added, removed or changed since, e.g. nix wrote flake.lock into it).
var ErrModified = errors.New("stored source tree was modified")

// treeSuffix names the file next to a stored tree that holds its TreeDigest.
const treeSuffix = ".tree"

// TreeDigest hashes a directory tree: every entry's path, type, executable
// bit, and a file's content or a symlink's target, in lexical order. Two
// trees have the same TreeDigest exactly when nix would see the same files.
func TreeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %q %q\n", rel, target)
		case d.IsDir():
			fmt.Fprintf(h, "d %q\n", rel)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %t %d %x\n", rel, info.Mode()&0o111 != 0, info.Size(), fh.Sum(nil))
		default:
			fmt.Fprintf(h, "? %q %v\n", rel, d.Type())
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// seal records the TreeDigest of tree in sidecar and takes every write
// permission bit off the tree (which stops anyone but root; Verify catches
// root).
func seal(tree, sidecar string) error {
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()&^0o222)
	})
	if err != nil {
		return err
	}
	sum, err := TreeDigest(tree)
	if err != nil {
		return err
	}
	return os.WriteFile(sidecar, []byte(sum+"\n"), 0o444)
}

// Verify returns ErrModified unless the tree of digest is exactly what Put
// extracted (its TreeDigest, recorded when it was stored, still holds).
// The agent runs as root, which permission bits do not stop: this check
// is what keeps the signed digest meaning the tree nix reads.
func (s Store) Verify(digest string) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	want, err := os.ReadFile(p + treeSuffix)
	if err != nil {
		return fmt.Errorf("%w: %s: no record of its content (%v)", ErrModified, digest, err)
	}
	got, err := TreeDigest(p)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrModified, digest, err)
	}
	if got != strings.TrimSpace(string(want)) {
		return fmt.Errorf("%w: %s differs from what was uploaded", ErrModified, digest)
	}
	return nil
}

// Remove deletes the tree of digest (and its record), e.g. after Verify
// failed, so that the next upload stores it again.
func (s Store) Remove(digest string) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	os.Remove(p + treeSuffix)
	return os.RemoveAll(p)
}
