package signing

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Domain errors of signature and intent verification. The agent maps each to
// a gRPC status in one place.
var (
	ErrUnknownKey    = errors.New("signed by a key this agent does not trust")
	ErrBadSignature  = errors.New("signature does not verify")
	ErrMalformed     = errors.New("malformed signed envelope")
	ErrWrongHost     = errors.New("intent is for another host")
	ErrWrongAction   = errors.New("intent is for another action")
	ErrExpired       = errors.New("intent has expired")
	ErrNotYetValid   = errors.New("intent is not valid yet")
	ErrLifetime      = errors.New("intent lifetime exceeds the agent's maximum")
	ErrReplay        = errors.New("intent nonce has been seen before (replay)")
	ErrNonceTooShort = errors.New("intent nonce is too short")
)

// Sign returns the key id and the signature over Context || payload.
func Sign(key ed25519.PrivateKey, payload []byte) (keyID string, sig []byte) {
	pub := Public(key)
	return KeyID(pub), ed25519.Sign(key, withContext(payload))
}

func withContext(payload []byte) []byte {
	msg := make([]byte, 0, len(Context)+len(payload))
	msg = append(msg, Context...)
	return append(msg, payload...)
}

// Verifier checks signatures against a set of trusted public keys.
type Verifier struct {
	keys map[string]ed25519.PublicKey
}

// NewVerifier parses trusted key lines ("panther-ed25519:<base64>").
func NewVerifier(lines []string) (*Verifier, error) {
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(lines))}
	for _, l := range lines {
		pub, err := ParsePublicKey(l)
		if err != nil {
			return nil, err
		}
		v.keys[KeyID(pub)] = pub
	}
	return v, nil
}

// Verify checks sig over Context || payload with the trusted key keyID.
func (v *Verifier) Verify(keyID string, payload, sig []byte) error {
	if keyID == "" || len(payload) == 0 || len(sig) != ed25519.SignatureSize {
		return ErrMalformed
	}
	pub, ok := v.keys[keyID]
	if !ok {
		return fmt.Errorf("key id %s: %w", keyID, ErrUnknownKey)
	}
	if !ed25519.Verify(pub, withContext(payload), sig) {
		return fmt.Errorf("key id %s: %w", keyID, ErrBadSignature)
	}
	return nil
}

// Claims are the parts of an intent every verifier checks, whatever the action.
type Claims struct {
	Host      string
	Action    string
	Nonce     []byte
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Policy holds the freshness rules an agent applies.
type Policy struct {
	// Host is this agent's host name; intents for others are refused.
	Host string
	// Skew is the clock skew tolerated on issued-at and expiry; default 30s.
	Skew time.Duration
	// MaxLifetime bounds expiry-issued; default 1h. It also bounds how long
	// nonces must be remembered.
	MaxLifetime time.Duration
}

// MinNonceLen is the shortest nonce accepted.
const MinNonceLen = 16

// Check validates c against p at time now for the wanted action. It does not
// consult the replay cache; see ReplayCache.Use.
func (p Policy) Check(c Claims, wantAction string, now time.Time) error {
	skew := p.Skew
	if skew == 0 {
		skew = 30 * time.Second
	}
	maxLife := p.MaxLifetime
	if maxLife == 0 {
		maxLife = time.Hour
	}
	switch {
	case c.Host != p.Host:
		return fmt.Errorf("%w: intent names %q, this is %q", ErrWrongHost, c.Host, p.Host)
	case c.Action != wantAction:
		return fmt.Errorf("%w: intent allows %q, this call is %q", ErrWrongAction, c.Action, wantAction)
	case len(c.Nonce) < MinNonceLen:
		return ErrNonceTooShort
	case c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() || !c.ExpiresAt.After(c.IssuedAt):
		return fmt.Errorf("%w: issued-at and expiry are required and ordered", ErrMalformed)
	case c.ExpiresAt.Sub(c.IssuedAt) > maxLife:
		return fmt.Errorf("%w (%v > %v)", ErrLifetime, c.ExpiresAt.Sub(c.IssuedAt), maxLife)
	case now.Add(skew).Before(c.IssuedAt):
		return fmt.Errorf("%w: issued %v in the future (check the controller's clock)", ErrNotYetValid, c.IssuedAt.Sub(now).Round(time.Second))
	case now.Add(-skew).After(c.ExpiresAt):
		return fmt.Errorf("%w: expired %v ago", ErrExpired, now.Sub(c.ExpiresAt).Round(time.Second))
	}
	return nil
}
