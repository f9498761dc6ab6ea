package health

import (
	"slices"

	"github.com/pantheros/panther/agent/config"
)

// SpecFromConfig returns the Spec the agent judges after a switch: the
// configured settle time, critical units (plus extraCritical, e.g. from the
// deploy request, without duplicates) and checks. The config's retry count
// keeps its meaning: 0 there is a single attempt.
func SpecFromConfig(c *config.Config, extraCritical []string) Spec {
	spec := Spec{Settle: c.HealthSettle.Duration}
	for _, u := range append(slices.Clone(c.CriticalUnits), extraCritical...) {
		if !slices.Contains(spec.CriticalUnits, u) {
			spec.CriticalUnits = append(spec.CriticalUnits, u)
		}
	}
	for _, h := range c.HealthChecks {
		retries := h.Retries
		if retries == 0 {
			retries = -1 // CheckSpec would read 0 as "default"
		}
		spec.Checks = append(spec.Checks, CheckSpec{
			Name:         h.Name,
			Type:         h.Type,
			URL:          h.URL,
			ExpectStatus: h.ExpectStatus,
			Address:      h.Address,
			Command:      slices.Clone(h.Command),
			Timeout:      h.Timeout.Duration,
			Retries:      retries,
			Interval:     h.Interval.Duration,
		})
	}
	return spec
}
