package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// cacheBytesRE is the agent's line after a substitution.
var cacheBytesRE = regexp.MustCompile(`fleet cache: substituted \S+ from \S+ \((\d+) bytes over the tailnet\)`)

// BenchmarkFleetCache: 16 agents deploy one identical system whose build
// takes ≥ 2 s of CPU (--build-only, --jobs 16), once with every host
// building it (--build-on none, today's behaviour) and once with the fleet
// cache (one builds, the others substitute it from the tailnet), in the
// same run. Builds are counted from the agents' deployment logs (the
// builder's marker line), bytes from the agents' substitution lines.
func BenchmarkFleetCache(b *testing.B) {
	const n = 16
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%02d", i)
	}
	f, _ := cacheFleetWith(b, hosts, 3*time.Minute)
	systems := map[string]string{}
	for _, h := range hosts {
		systems[h] = "shared"
	}
	const loops = 2500000 // ≈ 2.7 s of CPU on the lab machine
	var base, cached, builds, baseBuilds, bytesMax, bytesSum, subs float64
	for i := 0; i < b.N; i++ {
		salt := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		flakeBase := cacheFlake(b, salt+"-base", loops, systems)
		flakeCache := cacheFlake(b, salt+"-cache", loops, systems)

		t0 := time.Now()
		logs := cacheDeploy(b, f, flakeBase, hosts, "--build-on", "none")
		base += float64(time.Since(t0).Milliseconds())
		for _, l := range logs {
			if built(l) {
				baseBuilds++
			}
		}

		t0 = time.Now()
		logs = cacheDeploy(b, f, flakeCache, hosts)
		cached += float64(time.Since(t0).Milliseconds())
		for h, l := range logs {
			if built(l) {
				builds++
			}
			if m := cacheBytesRE.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				bytesSum += v
				subs++
				bytesMax = max(bytesMax, v)
			} else if !built(l) {
				b.Errorf("%s neither built nor substituted:\n%s", h, l)
			}
		}
	}
	N := float64(b.N)
	b.ReportMetric(builds/N, "builds")
	b.ReportMetric(baseBuilds/N, "builds-baseline")
	b.ReportMetric(cached/N, "ms/fleet-cache")
	b.ReportMetric(base/N, "ms/one-build-per-host")
	b.ReportMetric(cached/base, "x-baseline")
	b.ReportMetric(bytesMax, "bytes/host-max")
	if subs > 0 {
		b.ReportMetric(bytesSum/subs, "bytes/host-mean")
	}
	b.ReportMetric(0, "ns/op")
}
