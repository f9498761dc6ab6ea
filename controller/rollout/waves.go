package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Waves split a rollout's hosts into groups that switch one after the
// other; a wave with more than MaxUnhealthy hosts that did not succeed
// halts the rollout, and the remaining hosts are skipped, untouched.
type Waves struct {
	// Size is how many hosts a wave has; default 0: Percent, else all.
	Size int
	// Percent is a wave's size as a share of the hosts after the canary,
	// rounded up; used when Size is 0; default 0: one wave.
	Percent int
	// MaxUnhealthy is how many hosts of a wave may fail before the rollout
	// halts; default 0: the first failure halts it. The canary always
	// halts on one.
	MaxUnhealthy int
	// Pause is the wait between waves; default 0.
	Pause time.Duration
}

// ParseBatch reads --batch: a number of hosts ("5") or a share ("25%").
func ParseBatch(s string) (Waves, error) {
	var w Waves
	if s == "" {
		return w, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 {
			return w, fmt.Errorf("--batch %q: a share must be 1%% to 100%%", s)
		}
		w.Percent = n
		return w, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return w, fmt.Errorf("--batch %q: give a number of hosts (at least 1) or a share like 25%%", s)
	}
	w.Size = n
	return w, nil
}

// split cuts hrs into waves: the first canary hosts (if any), then groups
// of the wave size.
func (w Waves) split(hrs []*HostReport, canary int) [][]*HostReport {
	var out [][]*HostReport
	if canary > len(hrs) {
		canary = len(hrs)
	}
	if canary > 0 {
		out = append(out, hrs[:canary])
		hrs = hrs[canary:]
	}
	size := w.Size
	if size == 0 && w.Percent > 0 {
		size = (len(hrs)*w.Percent + 99) / 100
	}
	if size <= 0 {
		size = len(hrs)
	}
	for len(hrs) > 0 {
		n := min(size, len(hrs))
		out = append(out, hrs[:n])
		hrs = hrs[n:]
	}
	return out
}
