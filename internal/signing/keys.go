// Package signing holds panther's trust primitives: ed25519 operator keys, the
// domain-separated signature over a serialized intent, the freshness and host
// checks an agent applies to a signed intent, and the persisted replay cache.
//
// The signed bytes are always the exact bytes that travel on the wire; a
// verifier never re-serializes them before checking the signature.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// PublicKeyPrefix starts the one-line text form of a public key.
	PublicKeyPrefix = "panther-ed25519:"
	// privateKeyPrefix starts the one-line text form of a private key file.
	privateKeyPrefix = "panther-ed25519-private:"
	// Context is prepended to every signed payload so that a panther
	// signature can never be replayed as a signature over anything else.
	Context = "panther-intent-v1\x00"
)

// ErrKeyExists is returned when keygen would overwrite a key.
var ErrKeyExists = errors.New("key file already exists")

// GenerateKey returns a new private key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return priv, nil
}

// WritePrivateKey writes key to path with mode 0600, creating parent
// directories with mode 0700. It never overwrites an existing file.
func WritePrivateKey(path string, key ed25519.PrivateKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w (remove it first if you really mean to replace it)", path, ErrKeyExists)
	}
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	line := privateKeyPrefix + base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file: %w", err)
	}
	return f.Close()
}

// ReadPrivateKey reads a key written by WritePrivateKey. It refuses a file
// that other users can read, that another user owns, or that lies in a
// directory other users can write to; each error names the command that
// fixes it.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("private key %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s is accessible by other users (mode %v); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	if err := checkKeyOwnership(path, st); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, privateKeyPrefix) {
		return nil, fmt.Errorf("private key %s: not a panther key (want %q prefix)", path, privateKeyPrefix)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, privateKeyPrefix))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("private key %s: malformed key material", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// FormatPublicKey returns the one-line form "panther-ed25519:<base64>".
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses the one-line form of a public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, PublicKeyPrefix) {
		return nil, fmt.Errorf("public key %q: want the form %s<base64>", abbrev(s), PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PublicKeyPrefix))
	if err != nil {
		return nil, fmt.Errorf("public key %q: bad base64: %w", abbrev(s), err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: %d bytes, want %d", abbrev(s), len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// KeyID names a public key: the first 16 hex digits of its sha256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Public returns the public half of key.
func Public(key ed25519.PrivateKey) ed25519.PublicKey {
	return key.Public().(ed25519.PublicKey)
}
