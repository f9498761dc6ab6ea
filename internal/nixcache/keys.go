// Package nixcache is panther's fleet binary cache: every agent serves its
// Nix store read-only to its tailnet peers in Nix's own binary-cache
// protocol (nix-cache-info, <hash>.narinfo signed with the fleet key,
// nar/<hash>.nar uncompressed), and fetches from them through a local
// forwarder on 127.0.0.1, since the host's nix cannot reach the userspace
// tailnet itself. Nix verifies what it substitutes as it does any
// substitute: the narinfo's signature against its trusted public keys, the
// NAR against the narinfo's hash.
//
// A small build-state endpoint lets the hosts of one rollout agree that one
// of them builds a store path and the others wait for it (see Coordinator).
package nixcache

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Errors; test with errors.Is.
var (
	// ErrBadKey: a key is not "<name>:<base64>" of the right size.
	ErrBadKey = errors.New("invalid nix signing key")
	// ErrNotFound: the store does not have the path.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: a cache request names no valid store path hash.
	ErrBadRequest = errors.New("bad cache request")
)

// SecretKey is a Nix signing key as `nix key generate-secret` writes it:
// "<name>:<base64 of the 64-byte ed25519 private key>".
type SecretKey struct {
	Name string
	Key  ed25519.PrivateKey
}

// PublicKey is a Nix public key: "<name>:<base64 of 32 bytes>", what
// trusted-public-keys lists.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey
}

func splitKey(s string) (string, []byte, error) {
	name, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || name == "" {
		return "", nil, fmt.Errorf("%w: want <name>:<base64>", ErrBadKey)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: %v", ErrBadKey, name, err)
	}
	return name, b, nil
}

// ParseSecretKey parses a secret key.
func ParseSecretKey(s string) (SecretKey, error) {
	name, b, err := splitKey(s)
	if err != nil {
		return SecretKey{}, err
	}
	if len(b) != ed25519.PrivateKeySize {
		return SecretKey{}, fmt.Errorf("%w: %s: secret key has %d bytes, want %d", ErrBadKey, name, len(b), ed25519.PrivateKeySize)
	}
	return SecretKey{Name: name, Key: ed25519.PrivateKey(b)}, nil
}

// LoadSecretKey reads a secret key file.
func LoadSecretKey(file string) (SecretKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return SecretKey{}, fmt.Errorf("fleet cache key: %w", err)
	}
	k, err := ParseSecretKey(string(b))
	if err != nil {
		return SecretKey{}, fmt.Errorf("fleet cache key %s: %w", file, err)
	}
	return k, nil
}

// ParsePublicKey parses a public key.
func ParsePublicKey(s string) (PublicKey, error) {
	name, b, err := splitKey(s)
	if err != nil {
		return PublicKey{}, err
	}
	if len(b) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: %s: public key has %d bytes, want %d", ErrBadKey, name, len(b), ed25519.PublicKeySize)
	}
	return PublicKey{Name: name, Key: ed25519.PublicKey(b)}, nil
}

// Public returns the key's public half.
func (k SecretKey) Public() PublicKey {
	return PublicKey{Name: k.Name, Key: k.Key.Public().(ed25519.PublicKey)}
}

// String is the key as trusted-public-keys takes it.
func (k PublicKey) String() string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(k.Key)
}

// Sign returns the narinfo "Sig:" value of fingerprint: "<name>:<base64>".
func (k SecretKey) Sign(fingerprint string) string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(k.Key, []byte(fingerprint)))
}

// Verify reports whether sig ("<name>:<base64>") is k's signature of fingerprint.
func (k PublicKey) Verify(fingerprint, sig string) bool {
	name, b64, ok := strings.Cut(sig, ":")
	if !ok || name != k.Name {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(k.Key, []byte(fingerprint), b)
}

// Fingerprint is what Nix signs for a store path:
// "1;<path>;<narHash as sha256:base32>;<narSize>;<comma-separated full reference paths>".
func Fingerprint(path, narHash string, narSize int64, refs []string) string {
	return "1;" + path + ";" + narHash + ";" + strconv.FormatInt(narSize, 10) + ";" + strings.Join(refs, ",")
}

// nixBase32 is Nix's base-32 alphabet (no e, o, u, t).
const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// NixBase32 encodes b as Nix does (store path hashes, "sha256:<base32>").
func NixBase32(b []byte) string {
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out = append(out, nixBase32[c&0x1f])
	}
	return string(out)
}

// NarHashBase32 turns a nar hash as `nix path-info --json` prints it
// ("sha256-<base64>" (SRI) or "sha256:<base32>") into the "sha256:<base32>"
// form of fingerprints and narinfo files.
func NarHashBase32(h string) (string, error) {
	if rest, ok := strings.CutPrefix(h, "sha256-"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(b) != 32 {
			return "", fmt.Errorf("%w: nar hash %q", ErrBadRequest, h)
		}
		return "sha256:" + NixBase32(b), nil
	}
	if rest, ok := strings.CutPrefix(h, "sha256:"); ok && len(rest) == 52 && isBase32(rest) {
		return h, nil
	}
	return "", fmt.Errorf("%w: nar hash %q", ErrBadRequest, h)
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(nixBase32, rune(s[i])) {
			return false
		}
	}
	return true
}

// ValidHashPart reports whether s is a store path's hash part (32 base-32 characters).
func ValidHashPart(s string) bool { return len(s) == 32 && isBase32(s) }
