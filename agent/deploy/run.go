package deploy

import (
	"sync"
	"time"
)

// maxHistory bounds the events kept in memory per deployment; log lines past
// it are only in the deployment's log file.
const maxHistory = 20000

// run fans a deployment's events out to any number of subscribers without
// ever blocking the pipeline: events go to a history that subscribers read
// at their own pace.
type run struct {
	id string

	mu      sync.Mutex
	history []Event
	dropped int
	done    bool
	notify  chan struct{} // closed and replaced on every append
}

func newRun(id string) *run {
	return &run{id: id, notify: make(chan struct{})}
}

func (r *run) append(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	if len(r.history) >= maxHistory && ev.Kind == EventLog {
		r.dropped++
	} else {
		r.history = append(r.history, ev)
	}
	if ev.Kind == EventResult {
		r.done = true
	}
	close(r.notify)
	r.notify = make(chan struct{})
}

// next returns the events from index i on, whether the run is over, and a
// channel closed when more arrive.
func (r *run) next(i int) ([]Event, bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var evs []Event
	if i < len(r.history) {
		evs = append(evs, r.history[i:]...)
	}
	return evs, r.done, r.notify
}

// elapsedSince is a tiny helper for phase timing.
func elapsedSince(t time.Time, now time.Time) time.Duration {
	return now.Sub(t).Round(time.Millisecond)
}
