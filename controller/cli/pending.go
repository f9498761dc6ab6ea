package cli

import (
	"fmt"
	"time"
)

// lineOnceAccepted writes a line to the log file now and shows it only when
// the agent's first event arrives, that is once the request was accepted:
// a refused request (unknown key, peer, replay) then shows the refusal
// alone, not an upload that seemed to lead somewhere.
func (r *reporter) lineOnceAccepted(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logw != nil {
		fmt.Fprintf(r.logw, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), s)
	}
	r.pending = append(r.pending, s)
}

// showPending shows the lines held by lineOnceAccepted.
func (r *reporter) showPending() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.pending {
		r.showLocked(false, s)
	}
	r.pending = nil
}
