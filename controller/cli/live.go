package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/pantheros/panther/controller/termsafe"
)

// live shows one line per host on a terminal — phase, elapsed time and the
// last log line — with every other event printed above the lines. It uses
// mpb for the terminal handling; colour follows NO_COLOR (fatih/color).
type live struct {
	p *mpb.Progress
}

// hostLine is one host's live line.
type hostLine struct {
	mu    sync.Mutex
	host  string
	phase string
	last  string
	final string
	start time.Time
	bar   *mpb.Bar
}

func newLive(w io.Writer) *live {
	return &live{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(160), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())}
}

// add starts host's line.
func (l *live) add(host string) *hostLine {
	h := &hostLine{host: host, phase: "starting", start: time.Now()}
	h.bar = l.p.New(0, mpb.SpinnerStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return h.text() })),
		mpb.BarFillerClearOnComplete(), mpb.BarWidth(2))
	return h
}

func (h *hostLine) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.final != "" {
		return fmt.Sprintf("%-16s %s", h.host, h.final)
	}
	last := h.last
	if len(last) > 60 {
		last = last[:57] + "..."
	}
	return fmt.Sprintf("%-16s %-13s %7s  %s", h.host, h.phase, time.Since(h.start).Round(time.Second), last)
}

func (h *hostLine) setPhase(p string) {
	h.mu.Lock()
	h.phase = p
	h.mu.Unlock()
}

func (h *hostLine) setLast(s string) {
	h.mu.Lock()
	h.last = strings.TrimSpace(s)
	h.mu.Unlock()
}

// finish freezes the line with the host's result.
func (h *hostLine) finish(result string, ok bool) {
	c := color.New(color.FgRed)
	if ok {
		c = color.New(color.FgGreen)
	}
	h.mu.Lock()
	h.final = c.Sprint(termsafe.Line(result)) + fmt.Sprintf(" (%s)", time.Since(h.start).Round(100*time.Millisecond))
	h.mu.Unlock()
	h.bar.SetTotal(-1, true)
}

// println prints a line above the live lines.
func (l *live) println(s string) {
	fmt.Fprintln(l.p, s)
}

// wait stops the display once every line finished.
func (l *live) wait() { l.p.Wait() }
