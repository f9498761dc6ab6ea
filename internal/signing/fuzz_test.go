package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReplayCacheFile loads a fuzzed cache file: it must never fail to
// open (a torn or foreign line is skipped), must keep refusing a nonce it
// has accepted, also across a reload, and what it rewrites must load back.
func FuzzReplayCacheFile(f *testing.F) {
	f.Add([]byte("30313233343536373839616263646566 1800000000.600000000\n"))
	f.Add([]byte("30313233343536373839616263646566 1800000000\nzz 12\n\n"))
	f.Add([]byte("a b c\n 1 \n-1 -1.-1\nff 1800000000.99999999999\n"))
	f.Add([]byte{})
	now := time.Unix(1_800_000_000, 0)
	nonce := []byte("fuzz-nonce-0123456789")
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(t.TempDir(), "nonces")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := OpenReplayCache(path, now)
		if err != nil {
			t.Fatalf("open a cache file: %v", err)
		}
		if err := c.Use(nonce, now.Add(time.Minute), now); err != nil && !errors.Is(err, ErrReplay) {
			t.Fatalf("Use: %v", err)
		}
		if err := c.Use(nonce, now.Add(time.Minute), now); !errors.Is(err, ErrReplay) {
			t.Fatalf("second Use: %v, want ErrReplay", err)
		}
		c.Close()
		c2, err := OpenReplayCache(path, now)
		if err != nil {
			t.Fatalf("reopen the rewritten file: %v", err)
		}
		defer c2.Close()
		if err := c2.Use(nonce, now.Add(time.Minute), now); !errors.Is(err, ErrReplay) {
			t.Fatalf("after reload: %v, want ErrReplay", err)
		}
	})
}

// FuzzParsePublicKey: parsing never panics, and an accepted key prints
// back to the same line.
func FuzzParsePublicKey(f *testing.F) {
	f.Add(FormatPublicKey(Public(ed25519.NewKeyFromSeed(make([]byte, 32)))))
	f.Add(PublicKeyPrefix + "AAAA")
	f.Add(" " + PublicKeyPrefix + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte key", len(pub))
		}
		again, err := ParsePublicKey(FormatPublicKey(pub))
		if err != nil || !bytes.Equal(again, pub) {
			t.Fatalf("round trip of %q: %v", s, err)
		}
		if _, err := NewVerifier([]string{s}); err != nil {
			t.Fatalf("a key ParsePublicKey accepts is refused by NewVerifier: %v", err)
		}
	})
}

// FuzzReadPrivateKey: a fuzzed key file never panics the reader, and a key
// it accepts signs what its public half verifies.
func FuzzReadPrivateKey(f *testing.F) {
	f.Add([]byte(privateKeyPrefix + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte(privateKeyPrefix + "!!"))
	f.Add([]byte("panther-ed25519:AAAA"))
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := ReadPrivateKey(path)
		if err != nil {
			return
		}
		id, sig := Sign(key, []byte("x"))
		v, _ := NewVerifier([]string{FormatPublicKey(Public(key))})
		if err := v.Verify(id, []byte("x"), sig); err != nil {
			t.Fatalf("an accepted key does not verify its own signature: %v", err)
		}
	})
}
