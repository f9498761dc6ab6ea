package e2e

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
)

// benchInputBytes is the size of the incompressible file in the benchmark's
// flake input.
const benchInputBytes = 50 << 20

var (
	benchInputsSent = regexp.MustCompile(`(?m)^(\S+):\s+inputs: (\d+) of (\d+) sent \((\d+) bytes\)`)
	benchInputsHad  = regexp.MustCompile(`(?m)^(\S+):\s+the agent already has the (\d+) locked input`)
)

// BenchmarkInputs50MB (issue 12): a flake with a locked 50 MB input that
// the hosts cannot fetch, deployed (--build-only) to two agents: the first
// deploy uploads it once per agent (bytes per agent vs the input's NAR
// size, the baseline), the second sends 0 bytes. One iteration is one
// pair of deploys on a fresh input.
func BenchmarkInputs50MB(b *testing.B) {
	inputsEnv(b)
	hosts := map[string]string{"alpha": "good", "beta": "good"}
	f := fleettest.New(b, fleettest.Options{Hosts: hosts})
	s := benchSamples{}
	cpu0 := benchUsageNow(b)
	i := 0
	for b.Loop() {
		i++
		// A fresh input each iteration: new bytes, new store path, new URL.
		url, stop := inputsServeDep(inputsDepTarball(b, "bench input "+strconv.Itoa(i)+" "+time.Now().String(), benchInputBytes))
		inputsPatchFlakeDep(b, f.Flake, url, i)
		dep := inputsLockDep(b, f.Flake)
		stop()
		narSize := float64(inputsNarSize(b, dep))
		for name := range hosts {
			inputsForget(b, f.Hosts[name], dep)
		}
		args := []string{"deploy", "alpha", "beta", "--build-only", "--flake", f.Flake}
		first := benchMustCtl(b, f, args...)
		uploads, bytes := 0, 0.0
		for _, m := range benchInputsSent.FindAllStringSubmatch(first.stdout, -1) {
			n, _ := strconv.Atoi(m[2])
			sent, _ := strconv.ParseFloat(m[4], 64)
			uploads += n
			bytes += sent
		}
		if uploads == 0 {
			b.Fatalf("first deploy sent no input:\n%s", first)
		}
		s.add("uploads/agent-first", float64(uploads)/float64(len(hosts)))
		s.add("MB/agent-first", bytes/float64(len(hosts))/1e6)
		s.add("MB/nar", narSize/1e6)
		s.add("x-nar-first", bytes/float64(len(hosts))/narSize)
		s.addDur("ms/first-deploy", first.elapsed())

		f.SetVariant("alpha", "good-v2")
		f.SetVariant("beta", "good-v2")
		second := benchMustCtl(b, f, args...)
		f.SetVariant("alpha", "good")
		f.SetVariant("beta", "good")
		sentAgain := 0.0
		for _, m := range benchInputsSent.FindAllStringSubmatch(second.stdout, -1) {
			v, _ := strconv.ParseFloat(m[4], 64)
			sentAgain += v
		}
		if had := benchInputsHad.FindAllStringSubmatch(second.stdout, -1); len(had) != len(hosts) && sentAgain == 0 {
			b.Fatalf("second deploy: no agent said it had the input:\n%s", second)
		}
		s.add("bytes/second", sentAgain)
		s.addDur("ms/second-deploy", second.elapsed())
	}
	benchContention(b, cpu0)
	s.report(b)
	b.ReportMetric(s.max("bytes/second"), "bytes/second-max")
	b.ReportMetric(s.max("uploads/agent-first"), "uploads/agent-first-max")
}

// inputsPatchFlakeDep points the flake's dep input at url (patching the lab
// flake the first time).
func inputsPatchFlakeDep(tb testing.TB, dir, url string, i int) {
	tb.Helper()
	if i == 1 {
		inputsPatchFlake(tb, dir, url)
		return
	}
	inputsSetDepURL(tb, dir, url)
}

var inputsDepURLRE = regexp.MustCompile(`inputs\.dep\.url = "[^"]*";`)

func inputsSetDepURL(tb testing.TB, dir, url string) {
	tb.Helper()
	p := dir + "/flake.nix"
	b := inputsRead(tb, p)
	if !inputsDepURLRE.MatchString(b) {
		tb.Fatalf("no dep url in %s", p)
	}
	inputsWrite(tb, p, inputsDepURLRE.ReplaceAllString(b, `inputs.dep.url = "`+url+`";`))
}

func inputsNarSize(tb testing.TB, path string) int64 {
	tb.Helper()
	out := inputsNix(tb, "nix-store", "--query", "--size", path)
	size, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		tb.Fatalf("NAR size of %s: %q", path, out)
	}
	return size
}

func inputsRead(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func inputsWrite(tb testing.TB, p, s string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		tb.Fatal(err)
	}
}
