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
// The file is append-only (one "hexnonce unixexpiry" line per nonce, fsynced
// before the intent is acted on) and compacted when loaded.
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
			sec, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				continue
			}
			if exp := time.Unix(sec, 0); exp.Add(c.skew).After(now) {
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
		fmt.Fprintf(w, "%s %d\n", n, exp.Unix())
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
	if exp, ok := c.seen[key]; ok && exp.Add(c.skew).After(now) {
		return ErrReplay
	}
	if _, err := fmt.Fprintf(c.f, "%s %d\n", key, expiry.Unix()); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("replay cache: %w", err)
	}
	c.seen[key] = expiry
	if len(c.seen) > 4096 {
		for n, exp := range c.seen {
			if !exp.Add(c.skew).After(now) {
				delete(c.seen, n)
			}
		}
		return c.rewrite()
	}
	return nil
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
