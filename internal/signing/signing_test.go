package signing

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "key")
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKey(path, key); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	if err := WritePrivateKey(path, key); !errors.Is(err, ErrKeyExists) {
		t.Errorf("second write: got %v, want ErrKeyExists", err)
	}
	got, err := ReadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Error("read key differs from written key")
	}
	os.Chmod(path, 0o644)
	if _, err := ReadPrivateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: got %v", err)
	}
	line := FormatPublicKey(Public(key))
	if !strings.HasPrefix(line, PublicKeyPrefix) || strings.ContainsAny(line, "\n ") {
		t.Errorf("public key line %q", line)
	}
	pub, err := ParsePublicKey(line + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if KeyID(pub) != KeyID(Public(key)) {
		t.Error("key id changed through text form")
	}
}

// TestReadPrivateKeyChecksDirectoryAndOwner: the key file's mode was
// checked but not the directory it lives in (another user able to write
// there can replace the key) nor its owner.
func TestReadPrivateKeyChecksDirectoryAndOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "key")
	key, _ := GenerateKey()
	if err := WritePrivateKey(path, key); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKey(path); err != nil {
		t.Fatalf("key in a private directory: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := ReadPrivateKey(path)
	if err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Errorf("key in a world-writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKey(path); err != nil {
		t.Errorf("key in a sticky directory: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return // only root can give the file to someone else
	}
	if err := os.Chown(path, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err = ReadPrivateKey(path)
	if err == nil || !strings.Contains(err.Error(), "owned by uid 4242") || !strings.Contains(err.Error(), "chown 0 "+path) {
		t.Errorf("key owned by another user: %v", err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err = ReadPrivateKey(path); err == nil || !strings.Contains(err.Error(), "directory "+dir+" is owned by uid 4242") {
		t.Errorf("key in another user's directory: %v", err)
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", "AAAA"},
		{"ssh key", "ssh-ed25519 AAAAC3Nza"},
		{"bad base64", PublicKeyPrefix + "!!!"},
		{"short", PublicKeyPrefix + "AAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tc.in); err == nil {
				t.Errorf("ParsePublicKey(%q) succeeded", tc.in)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	v, err := NewVerifier([]string{FormatPublicKey(Public(key))})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("intent bytes")
	id, sig := Sign(key, payload)
	otherID, otherSig := Sign(other, payload)
	flipped := append([]byte(nil), sig...)
	flipped[3] ^= 1
	for _, tc := range []struct {
		name    string
		id      string
		payload []byte
		sig     []byte
		want    error
	}{
		{"good", id, payload, sig, nil},
		{"unknown key", otherID, payload, otherSig, ErrUnknownKey},
		{"other key claims trusted id", id, payload, otherSig, ErrBadSignature},
		{"flipped bit", id, payload, flipped, ErrBadSignature},
		{"changed payload", id, []byte("intent bytez"), sig, ErrBadSignature},
		{"short sig", id, payload, sig[:10], ErrMalformed},
		{"empty payload", id, nil, sig, ErrMalformed},
		{"no key id", "", payload, sig, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.id, tc.payload, tc.sig)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSignatureIsDomainSeparated: a panther signature is over Context ||
// payload, never the bare payload, so a signature the same key made for
// anything else (an ed25519 signature over the bare bytes) does not verify
// as an intent, and a panther signature is no signature over the bare
// bytes.
func TestSignatureIsDomainSeparated(t *testing.T) {
	key, _ := GenerateKey()
	pub := Public(key)
	payload := []byte("an intent's bytes")
	v, _ := NewVerifier([]string{FormatPublicKey(pub)})

	// A plain ed25519 signature over the payload, made outside panther.
	plain := ed25519.Sign(key, payload)
	if err := v.Verify(KeyID(pub), payload, plain); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a signature without the context verified as an intent: %v", err)
	}

	// Sign's signature covers exactly Context || payload.
	_, sig := Sign(key, payload)
	if ed25519.Verify(pub, payload, sig) {
		t.Error("Sign's signature verifies over the bare payload")
	}
	if !ed25519.Verify(pub, append([]byte(Context), payload...), sig) {
		t.Error("Sign's signature does not verify over Context || payload")
	}
	if err := v.Verify(KeyID(pub), payload, sig); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestPolicyCheck(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := Policy{Host: "yoga"}
	good := Claims{Host: "yoga", Action: "switch", Nonce: make([]byte, 16), IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(4 * time.Minute)}
	mod := func(f func(*Claims)) Claims { c := good; f(&c); return c }
	for _, tc := range []struct {
		name string
		c    Claims
		want error
	}{
		{"good", good, nil},
		{"other host", mod(func(c *Claims) { c.Host = "zephyrus" }), ErrWrongHost},
		{"other action", mod(func(c *Claims) { c.Action = "boot" }), ErrWrongAction},
		{"short nonce", mod(func(c *Claims) { c.Nonce = []byte{1} }), ErrNonceTooShort},
		{"expired", mod(func(c *Claims) { c.IssuedAt = now.Add(-5 * time.Minute); c.ExpiresAt = now.Add(-time.Minute) }), ErrExpired},
		{"expired within skew", mod(func(c *Claims) { c.IssuedAt = now.Add(-5 * time.Minute); c.ExpiresAt = now.Add(-10 * time.Second) }), nil},
		{"future", mod(func(c *Claims) { c.IssuedAt = now.Add(2 * time.Minute) }), ErrNotYetValid},
		{"future within skew", mod(func(c *Claims) { c.IssuedAt = now.Add(10 * time.Second) }), nil},
		{"too long", mod(func(c *Claims) { c.ExpiresAt = now.Add(48 * time.Hour) }), ErrLifetime},
		{"no times", mod(func(c *Claims) { c.IssuedAt = time.Time{} }), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.c, "switch", now)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReplayCacheSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	now := time.Now()
	c, err := OpenReplayCache(path, now)
	if err != nil {
		t.Fatal(err)
	}
	n1 := []byte("0123456789abcdef")
	n2 := []byte("fedcba9876543210")
	if err := c.Use(n1, now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := c.Use(n2, now.Add(-time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if err := c.Use(n1, now.Add(time.Minute), now); !errors.Is(err, ErrReplay) {
		t.Fatalf("reuse: %v", err)
	}
	c.Close()

	c2, err := OpenReplayCache(path, now)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Use(n1, now.Add(time.Minute), now); !errors.Is(err, ErrReplay) {
		t.Errorf("after restart: %v, want ErrReplay", err)
	}
	// The expired nonce was compacted away (its intent would fail expiry anyway).
	if err := c2.Use(n2, now.Add(time.Minute), now); err != nil {
		t.Errorf("expired nonce still remembered: %v", err)
	}
}

// TestReplayCacheRestartKeepsSubSecondExpiry: an intent whose expiry has a
// fraction of a second is still fresh at expiry+skew, so a restart then must
// still remember its nonce. With expiries cut to whole seconds, a restart at
// expiry+29.6 s (skew 30 s) accepted the same envelope a second time.
func TestReplayCacheRestartKeepsSubSecondExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	issued := time.Unix(1_800_000_000, 0)
	expiry := issued.Add(5*time.Minute + 600*time.Millisecond)
	claims := Claims{Host: "yoga", Action: "switch", Nonce: []byte("0123456789abcdef"), IssuedAt: issued, ExpiresAt: expiry}
	p := Policy{Host: "yoga"}

	c, err := OpenReplayCache(path, issued)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Use(claims.Nonce, expiry, issued); err != nil {
		t.Fatal(err)
	}
	c.Close()

	for _, after := range []time.Duration{29*time.Second + 600*time.Millisecond, 29*time.Second + 999*time.Millisecond, 30 * time.Second} {
		restart := expiry.Add(after)
		if err := p.Check(claims, "switch", restart); err != nil {
			t.Fatalf("at expiry+%v the intent is not fresh (%v): the test no longer probes the window", after, err)
		}
		c2, err := OpenReplayCache(path, restart)
		if err != nil {
			t.Fatal(err)
		}
		err = c2.Use(claims.Nonce, expiry, restart)
		c2.Close()
		if !errors.Is(err, ErrReplay) {
			t.Fatalf("restart at expiry+%v: Use = %v, want ErrReplay (the envelope would be accepted twice)", after, err)
		}
	}
	// Once the intent fails freshness the nonce may go.
	late := expiry.Add(30*time.Second + time.Nanosecond)
	if err := p.Check(claims, "switch", late); !errors.Is(err, ErrExpired) {
		t.Fatalf("Check at expiry+skew+1ns = %v, want ErrExpired", err)
	}
	c3, err := OpenReplayCache(path, late)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := c3.Use(claims.Nonce, expiry, late); err != nil {
		t.Errorf("nonce of an expired intent still remembered: %v", err)
	}
}

func TestReplayCacheReadsWholeSecondsRoundedUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nonces")
	nonce := []byte("0123456789abcdef")
	// An older agent wrote 1800000000 for an expiry of 1800000000.6.
	if err := os.WriteFile(path, []byte(hex.EncodeToString(nonce)+" 1800000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_030, 200_000_000)
	c, err := OpenReplayCache(path, now)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Use(nonce, time.Unix(1_800_000_000, 600_000_000), now); !errors.Is(err, ErrReplay) {
		t.Errorf("Use = %v, want ErrReplay", err)
	}
}
