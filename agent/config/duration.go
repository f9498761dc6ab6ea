package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("60s", "1m30s") or as a number of seconds (60, 1.5). It marshals as a
// string. It is also a flag.Value accepting the same two forms.
type Duration struct{ time.Duration }

// ParseDuration parses a Go duration string or a plain number of seconds.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration: want a Go duration like \"60s\" or a number of seconds")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsToDuration(f)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a Go duration like \"60s\" or a number of seconds", s)
	}
	return d, nil
}

func secondsToDuration(f float64) (time.Duration, error) {
	ns := f * float64(time.Second)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, fmt.Errorf("duration of %v seconds is out of range", f)
	}
	return time.Duration(ns), nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// UnmarshalJSON accepts a Go duration string or a number of seconds; null
// leaves the value unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := ParseDuration(str)
		if err != nil {
			return err
		}
		d.Duration = v
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a Go duration like \"60s\" or a number of seconds", s)
	}
	v, err := secondsToDuration(f)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// String returns the Go duration string; it makes Duration a flag.Value.
func (d *Duration) String() string {
	if d == nil {
		return "0s"
	}
	return d.Duration.String()
}

// Set parses a flag value with [ParseDuration].
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}
