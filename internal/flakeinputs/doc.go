// Package flakeinputs ships a flake's locked inputs from the controller to
// the agents, so that an agent evaluates with no network and no
// credentials, and enforces the lock on both sides.
//
// A locked input (a tarball, git or github input with a narHash in
// flake.lock) lives in the nix store as a fixed-output, recursively hashed
// path, "<hash>-source", whose hash follows from the NAR hash alone. The
// controller lets nix fetch every input into its own store (Collect: `nix
// flake archive`), reads each path's NAR hash and size, and sends the NAR
// (`nix-store --dump`) to the agents that lack the path. The list goes into
// the signed intent. The agent (Store.Add) hashes the NAR as it arrives,
// refuses it unless it has exactly the signed size and NAR hash, restores
// it and adds it with `nix store add-path --name source`, and refuses again
// unless that gives exactly the signed store path. nix then finds every
// input of the lock in the store and fetches nothing.
//
// CheckLock refuses a flake whose flake.lock lacks an input that flake.nix
// declares (nix 2.8 would fetch it even with --no-update-lock-file), naming
// the inputs and the command that fixes it.
package flakeinputs

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrLock: flake.lock is missing or lacks an entry for a declared input.
	ErrLock = errors.New("flake lock incomplete")
	// ErrBadInput: an input's store path or NAR hash is malformed.
	ErrBadInput = errors.New("malformed flake input")
	// ErrTooLarge: an input is larger than the agent accepts.
	ErrTooLarge = errors.New("flake input exceeds the upload limit")
	// ErrTruncated: fewer or more bytes arrived than the signed NAR size.
	ErrTruncated = errors.New("flake input upload truncated")
	// ErrHashMismatch: the bytes do not hash to the signed NAR hash.
	ErrHashMismatch = errors.New("flake input NAR hash mismatch")
	// ErrPathMismatch: adding the NAR gave another store path than the
	// signed one.
	ErrPathMismatch = errors.New("flake input store path mismatch")
	// ErrMissing: an input the intent names is not in the agent's store.
	ErrMissing = errors.New("flake input not in the store")
)

// Input is one locked input as a store path.
type Input struct {
	Name      string // attribute path in the lock ("nixpkgs", "dep/nixpkgs")
	StorePath string // /nix/store/<hash>-<name>
	NarHash   string // "sha256-<base64>"
	NarSize   int64
}
