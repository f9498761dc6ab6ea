package main

import (
	"strings"
	"testing"
)

const simSample = `BenchmarkSimFleet-2   	       1	       122.2 MB/peak-rss-added-max	         0.1222 MB/rss-per-host-max	      1000 hosts	         2.627 ms-cpu-ctl/host	         4.107 ms-cpu/host	       391.7 ms/host	      5671 ms/jobs-100	      4391 ms/jobs-1000	     15755 ms/jobs-25	      3772 ms/jobs-250	         1.448 x-latency-model-jobs-100	        11.21 x-latency-model-jobs-1000	         1.006 x-latency-model-jobs-25	         2.408 x-latency-model-jobs-250	         1.448 x-latency-model-max	         1.448 x-model-jobs-100	         2.531 x-model-jobs-1000	         1.006 x-model-jobs-25	         2.408 x-model-jobs-250	         2.531 x-model-max	9.5 load1
`

// The simulated fleet's goals (issue 12 item 6) and its breakdown.
func TestSimFleetReport(t *testing.T) {
	r := newResults()
	if err := r.parse(strings.NewReader(simSample)); err != nil {
		t.Fatal(err)
	}
	rep := r.report()
	for _, want := range []string{
		"| 12.6 | 1,000 simulated agents: pantherctl peak RSS added per host (largest of every --jobs) | 0.1 MB (122 MB for the fleet) |",
		"| ≤ 1.0 MB | met |",
		"wall vs the model ceil(N/jobs) × one host, --jobs 25 and 100 (worst median ratio) | 1.45× |",
		"| ≤ 1.20× | **missed** by 0.25× (+21%) |",
		"## 12.6 Controller scale: 1000 simulated agents",
		"h = 392 ms; c = 4.11 ms of CPU per host (pantherctl 2.63 ms); load average 9.5 at the end.",
		"| 100 | 5671 ms | 3917 ms | 1.45× | 1.45× |",
		"| 1000 | 4391 ms | 392 ms | 11.21× | 2.53× |",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(rep)
	}
}
