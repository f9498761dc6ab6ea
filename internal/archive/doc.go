// Package archive packs a flake's source tree into a deterministic tar the
// way Nix sees it (tracked files only inside a git work tree), and extracts
// such a tar on the agent without ever writing outside the destination.
//
// The controller calls Pack and sends the bytes together with their digest;
// the agent hands the stream to a content-addressed Store, which checks the
// digest and extracts with Extract under Limits. Extract refuses path
// traversal, escaping symlinks, special files and oversized or truncated
// streams with the sentinel errors below, and leaves nothing behind on
// failure.
package archive

import "errors"

// Sentinel errors. Extract and Store wrap them with the offending entry name;
// test with errors.Is.
var (
	// ErrUnsafePath: an entry name is absolute, contains "..", or reaches
	// through a symlink or an earlier entry of another type.
	ErrUnsafePath = errors.New("unsafe path in archive")
	// ErrSymlinkEscape: a symlink target is absolute or resolves outside the
	// destination.
	ErrSymlinkEscape = errors.New("symlink escapes archive root")
	// ErrUnsupportedType: an entry is not a regular file, directory or
	// symlink (device, fifo, hard link, sparse file, ...).
	ErrUnsupportedType = errors.New("unsupported archive entry type")
	// ErrTooLarge: the archive holds more bytes or entries than the Limits
	// allow.
	ErrTooLarge = errors.New("archive exceeds limits")
	// ErrTruncated: the stream ended early or is not a valid tar.
	ErrTruncated = errors.New("archive truncated or corrupt")
	// ErrDigestMismatch: the bytes received do not hash to the digest that
	// was announced for them.
	ErrDigestMismatch = errors.New("archive digest mismatch")
	// ErrBadDigest: a digest string is not "sha256:" followed by 64
	// lowercase hex digits.
	ErrBadDigest = errors.New("malformed digest")
	// ErrExists: the destination of Extract already exists.
	ErrExists = errors.New("destination already exists")
)
