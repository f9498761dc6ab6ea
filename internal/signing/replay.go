package signing

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReplayCache remembers the nonces of accepted intents until they expire, in
// a file so that an agent restart does not reopen a replay window.
//
// The file is append-only (one "hexnonce expiry" line per nonce, fsynced
// before the intent is acted on) and compacted when loaded. The expiry is
// written at full precision, "<unix seconds>.<nanoseconds>": the freshness
// check compares at full precision, so an expiry cut to whole seconds would
// forget a nonce up to a second before its intent stops being fresh, and an
// agent restarted in that second would accept the intent again. Lines of
// older files (whole seconds, truncated) are read rounded up a second.
type ReplayCache struct {
	path string
	// Skew is added to each expiry before a nonce is forgotten; default 30s.
	skew time.Duration

	mu   sync.Mutex
	seen map[string]time.Time
	f    *os.File
}

// OpenReplayCache loads (and compacts) the cache at path, dropping nonces
// that expired before now.
func OpenReplayCache(path string, now time.Time) (*ReplayCache, error) {
	c := &ReplayCache{path: path, skew: 30 * time.Second, seen: map[string]time.Time{}}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 2 {
				continue // a torn last line after a crash
			}
			exp, ok := parseExpiry(fields[1])
			if !ok {
				continue
			}
			if c.live(exp, now) {
				c.seen[fields[0]] = exp
			}
		}
		f.Close()
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	if err := c.rewrite(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *ReplayCache) rewrite() error {
	tmp := c.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	w := bufio.NewWriter(f)
	for n, exp := range c.seen {
		fmt.Fprintf(w, "%s %s\n", n, formatExpiry(exp))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("replay cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("replay cache: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	if c.f != nil {
		c.f.Close()
	}
	c.f, err = os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	return nil
}

// Use records nonce as seen until expiry. It returns ErrReplay if the nonce
// was already used. The record is on disk before Use returns.
func (c *ReplayCache) Use(nonce []byte, expiry, now time.Time) error {
	key := hex.EncodeToString(nonce)
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[key]; ok && c.live(exp, now) {
		return ErrReplay
	}
	if _, err := fmt.Fprintf(c.f, "%s %s\n", key, formatExpiry(expiry)); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.seen[key] = expiry
	if len(c.seen) > 4096 {
		for n, exp := range c.seen {
			if !c.live(exp, now) {
				delete(c.seen, n)
			}
		}
		return c.rewrite()
	}
	return nil
}

// live reports whether a nonce that expires at exp must still be
// remembered at now: as long as its intent can pass the freshness check
// (signing.Policy accepts up to and including expiry+skew).
func (c *ReplayCache) live(exp, now time.Time) bool {
	return !now.After(exp.Add(c.skew))
}

// formatExpiry writes t as "<unix seconds>.<nanoseconds>".
func formatExpiry(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// parseExpiry reads what formatExpiry wrote, and the whole (truncated)
// seconds of older files rounded up.
func parseExpiry(s string) (time.Time, bool) {
	secStr, nsStr, frac := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if !frac {
		return time.Unix(sec+1, 0), true
	}
	if len(nsStr) != 9 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(nsStr, 10, 32)
	if err != nil || ns >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(ns)), true
}

// Close closes the cache file.
func (c *ReplayCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
