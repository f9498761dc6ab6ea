package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// digestPrefix names the only hash algorithm used for archives.
const digestPrefix = "sha256:"

// Digest reads r to its end and returns "sha256:<hex>" of its bytes.
func Digest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	return formatDigest(h), nil
}

// ParseDigest checks that d is "sha256:" followed by 64 lowercase hex digits
// and returns the hex part.
func ParseDigest(d string) (hexSum string, err error) {
	hexSum, ok := strings.CutPrefix(d, digestPrefix)
	if !ok || len(hexSum) != 2*sha256.Size {
		return "", fmt.Errorf("%q: %w", d, ErrBadDigest)
	}
	for _, c := range hexSum {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%q: %w", d, ErrBadDigest)
		}
	}
	return hexSum, nil
}

func formatDigest(h hash.Hash) string {
	return digestPrefix + hex.EncodeToString(h.Sum(nil))
}
