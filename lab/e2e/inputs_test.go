package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
)

// The tests of issue 12 items 1, 2 and 5: locked inputs shipped by the
// controller, the lock enforced, the git revision carried to the host.

// inputsEnv gives pantherctl's own nix (which checks the lock and
// collects the inputs) the test nix settings: no substituters, no build
// users.
func inputsEnv(t testing.TB) {
	t.Helper()
	env := nixtest.Env(t)
	for _, kv := range env.Environ {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			t.Setenv("NIX_CONFIG", v)
		}
	}
}

// inputsDepTarball is a gzipped tarball of a flake "dep" (no inputs) holding
// msg.txt and, when big > 0, a file of big incompressible bytes.
func inputsDepTarball(t testing.TB, msg string, big int) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.WriteHeader(&tar.Header{Name: "dep/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
	add("dep/flake.nix", []byte("{ outputs = _: { }; }\n"))
	add("dep/msg.txt", []byte(msg))
	if big > 0 {
		data := make([]byte, big)
		// Incompressible, deterministic for a given msg: a NAR that nobody
		// has but this test.
		seed := uint64(len(msg)) + 0x9e3779b97f4a7c15
		for _, c := range msg {
			seed = seed*31 + uint64(c)
		}
		for i := range data {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			data[i] = byte(seed)
		}
		add("dep/big.bin", data)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// inputsPatchFlake makes the lab flake's toplevels depend on the flake's git
// revision (configurationRevision = self.rev or "dirty", as a NixOS flake
// sets system.configurationRevision) and, when depURL is set, on a locked
// input "dep" fetched from depURL (its msg.txt).
func inputsPatchFlake(t testing.TB, dir, depURL string) {
	t.Helper()
	p := filepath.Join(dir, "flake.nix")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	extra := `{ configurationRevision = self.rev or "dirty"; }`
	if depURL != "" {
		s = inputsReplace(t, s, "outputs = { self }:", "inputs.dep.url = \""+depURL+"\";\n  outputs = { self, dep }:")
		extra = `{ configurationRevision = self.rev or "dirty"; depMsg = builtins.readFile "${dep}/msg.txt"; }`
	}
	s = inputsReplace(t, s, `extra = (if salt == "" then { } else { inherit salt; })`, `extra = (if salt == "" then { } else { inherit salt; }) // `+extra)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func inputsReplace(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("patching the lab flake: %q not found once", old)
	}
	return strings.Replace(s, old, new, 1)
}

// inputsServeDep serves tarball at <url>/dep.tar.gz from the test's network
// namespace (which the hosts' namespaces cannot reach) until the returned
// function is called.
func inputsServeDep(tarball []byte) (url string, stop func()) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dep.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(tarball)
	}))
	return srv.URL + "/dep.tar.gz", srv.Close
}

// inputsNix runs nix (or nix-store) on the machine with the test settings.
func inputsNix(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = nixtest.Env(t).Environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// inputsLockDep locks the flake at dir (the controller fetches dep into its
// store) and returns dep's store path.
func inputsLockDep(t testing.TB, dir string) string {
	t.Helper()
	inputsNix(t, "nix", "flake", "lock", "path:"+dir)
	var tree struct {
		Inputs map[string]struct {
			Path string `json:"path"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(inputsNix(t, "nix", "flake", "archive", "--json", "--dry-run", "path:"+dir)), &tree); err != nil {
		t.Fatal(err)
	}
	p := tree.Inputs["dep"].Path
	if !strings.HasPrefix(p, "/nix/store/") {
		t.Fatalf("no store path for dep: %+v", tree)
	}
	return p
}

// inputsForget removes a store path and nix's fetcher cache from a host (the
// sandbox sees the machine's store and /root through its lower layer; the
// deletion stays in the host's upper layer) and checks the host lacks it.
func inputsForget(t testing.TB, h *fleettest.Host, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := h.SB.Command(ctx, "nix-store", "--delete", "--ignore-liveness", path)
	cmd.Env = append(cmd.Env, "NIX_CONFIG=build-users-group =")
	cmd.CombinedOutput() // fails when it is not valid there: fine
	// nix's fetcher cache (shared through the lower layer too) remembers
	// the downloaded tarball: a host that never fetched it has none.
	if _, err := h.SB.Exec(ctx, "rm", "-rf", "/root/.cache/nix"); err != nil {
		t.Fatal(err)
	}
	if inputsHasPath(t, h, path) {
		t.Fatalf("%s: %s still in the host's store", h.Name, path)
	}
}

func inputsHasPath(t testing.TB, h *fleettest.Host, path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := h.SB.Command(ctx, "nix-store", "--check-validity", path)
	cmd.Env = append(cmd.Env, "NIX_CONFIG=build-users-group =")
	return cmd.Run() == nil
}

// inputsDrvEnv is the build environment of the derivation of a host's
// current system, read on the host.
func inputsDrvEnv(t testing.TB, h *fleettest.Host) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := h.SB.Command(ctx, "nix", "show-derivation", "/run/current-system")
	cmd.Env = append(cmd.Env, "NIX_CONFIG=extra-experimental-features = nix-command\nbuild-users-group =")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: nix show-derivation: %v", h.Name, err)
	}
	var drvs map[string]struct {
		Env map[string]string `json:"env"`
	}
	if err := json.Unmarshal(out, &drvs); err != nil {
		t.Fatal(err)
	}
	for _, d := range drvs {
		return d.Env
	}
	t.Fatalf("%s: no derivation", h.Name)
	return nil
}

// TestInputsShippedHostCannotFetch is the key test of shipped inputs: the
// flake has a locked input whose URL the host cannot reach and that only
// the controller's store holds. With --inputs fetch (the agent's nix
// fetches, as before) the deploy fails at evaluation; by default the
// controller ships it, the agent verifies and adds it, and the deploy is
// confirmed; the next deploy sends no input bytes.
func TestInputsShippedHostCannotFetch(t *testing.T) {
	inputsEnv(t)
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	alpha := f.Hosts["alpha"]
	url, stop := inputsServeDep(inputsDepTarball(t, "shipped by the controller "+t.Name()+time.Now().String(), 0))
	inputsPatchFlake(t, f.Flake, url)
	dep := inputsLockDep(t, f.Flake)
	stop()
	inputsForget(t, alpha, dep)

	r := f.Ctl("deploy", "alpha", "--yes", "--inputs", "fetch", "--flake", f.Flake)
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "dep.tar.gz") {
		t.Fatalf("--inputs fetch: want a failed evaluation naming the input's URL, got %s", r)
	}
	if inputsHasPath(t, alpha, dep) {
		t.Fatalf("the agent fetched %s although the URL is unreachable", dep)
	}

	r = f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if !strings.Contains(r.Stdout, "result: confirmed") || !strings.Contains(r.Stdout, "inputs: 1 of 1 sent") {
		t.Fatalf("deploy with shipped inputs:\n%s", r)
	}
	if !inputsHasPath(t, alpha, dep) {
		t.Fatalf("%s not in the host's store after the deploy", dep)
	}
	// Rooted: a garbage collection before the next deploy keeps it.
	if target, err := os.Readlink(alpha.SB.Path("/nix/var/nix/gcroots/panther-inputs/" + filepath.Base(dep))); err != nil || target != dep {
		t.Errorf("no garbage collector root for %s: %q, %v", dep, target, err)
	}
	if env := inputsDrvEnv(t, alpha); !strings.HasPrefix(env["depMsg"], "shipped by the controller") {
		t.Fatalf("the system does not hold the input's content: depMsg = %q", env["depMsg"])
	}
	id := inputsLatestDeployment(t, alpha)
	rec := alpha.Record(t, id)
	if ins, _ := rec["inputs"].([]any); len(ins) != 1 || ins[0] != dep {
		t.Errorf("journal record inputs = %v, want [%s]", rec["inputs"], dep)
	}

	f.SetVariant("alpha", "good-v2")
	r = f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if !strings.Contains(r.Stdout, "already has the 1 locked input(s); nothing sent") {
		t.Errorf("second deploy sent the input again:\n%s", r)
	}
}

// inputsLatestDeployment is the id of the host's newest deployment (ids sort by
// time).
func inputsLatestDeployment(t testing.TB, h *fleettest.Host) string {
	t.Helper()
	dirs, _ := filepath.Glob(h.SB.Path("/var/lib/panther-agent/deployments/*"))
	if len(dirs) == 0 {
		t.Fatalf("%s: no deployments", h.Name)
	}
	sort.Strings(dirs)
	return filepath.Base(dirs[len(dirs)-1])
}

// TestInputsRevisionAndReadOnlySource: a deploy from a clean git checkout
// carries its commit to the host: nix gets it as self.rev (so
// system.configurationRevision = self.rev or "dirty" is the commit), and
// rollback --list and status show it; an uncommitted change shows as
// dirty. The stored source stays as uploaded: sealed with its content
// record, no flake.lock in it (internal/nix TestRealNixNeverWritesTheLock
// shows nix writing one without the lock flags).
func TestInputsRevisionAndReadOnlySource(t *testing.T) {
	inputsEnv(t)
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	alpha := f.Hosts["alpha"]
	inputsPatchFlake(t, f.Flake, "")
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", f.Flake}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "lab flake")
	rev := git("rev-parse", "HEAD")

	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if env := inputsDrvEnv(t, alpha); env["configurationRevision"] != rev {
		t.Errorf("system.configurationRevision on the host = %q, want the commit %s", env["configurationRevision"], rev)
	}
	id := inputsLatestDeployment(t, alpha)
	if rec := alpha.Record(t, id); rec["sourceRev"] != rev {
		t.Errorf("journal record sourceRev = %v, want %s", rec["sourceRev"], rev)
	}
	if out := f.MustCtl(0, "rollback", "alpha", "--list").Stdout; !strings.Contains(out, rev) {
		t.Errorf("rollback --list lacks the revision %s:\n%s", rev, out)
	}
	if out := f.MustCtl(0, "status", "alpha").Stdout; !strings.Contains(out, "revision") || !strings.Contains(out, rev) {
		t.Errorf("status lacks the revision %s:\n%s", rev, out)
	}
	sources, err := filepath.Glob(alpha.SB.Path("/var/lib/panther-agent/sources/*"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("no stored source: %v", err)
	}
	for _, s := range sources {
		if strings.HasSuffix(s, ".tree") {
			continue
		}
		if _, err := os.Stat(filepath.Join(s, "flake.lock")); err == nil {
			t.Errorf("nix wrote flake.lock into the stored source %s", s)
		}
		if _, err := os.Stat(s + ".tree"); err != nil {
			t.Errorf("stored source %s has no content record: %v", s, err)
		}
	}

	// An uncommitted change: dirty, and self.rev unset.
	f.SetVariant("alpha", "good-v2")
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if env := inputsDrvEnv(t, alpha); env["configurationRevision"] != "dirty" {
		t.Errorf("dirty checkout: configurationRevision = %q, want dirty", env["configurationRevision"])
	}
	if out := f.MustCtl(0, "status", "alpha").Stdout; !strings.Contains(out, rev+"-dirty") {
		t.Errorf("status lacks %s-dirty:\n%s", rev, out)
	}
}

// TestInputsMissingLockRefusedBeforeUpload: an input in flake.nix without
// a flake.lock entry is named, with `nix flake lock`, by preflight and by
// deploy, and deploy uploads nothing.
func TestInputsMissingLockRefusedBeforeUpload(t *testing.T) {
	inputsEnv(t)
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	alpha := f.Hosts["alpha"]
	inputsPatchFlake(t, f.Flake, "http://127.0.0.1:9/never-fetched.tar.gz")

	r := f.Ctl("deploy", "alpha", "--yes", "--flake", f.Flake)
	if r.Code == 0 || !strings.Contains(r.Stderr, `"dep"`) || !strings.Contains(r.Stderr, "nix flake lock") {
		t.Fatalf("deploy: want a refusal naming dep and nix flake lock, got %s", r)
	}
	if sources, _ := filepath.Glob(alpha.SB.Path("/var/lib/panther-agent/sources/*")); len(sources) > 0 {
		t.Errorf("deploy uploaded %v before refusing", sources)
	}
	r = f.Ctl("preflight", "alpha", "--flake", f.Flake)
	if r.Code != 3 || !strings.Contains(r.Stdout, "flake.lock complete") || !strings.Contains(r.Stdout, `"dep"`) ||
		!strings.Contains(r.Stdout, "nix flake lock") {
		t.Fatalf("preflight: want exit 3 naming dep and nix flake lock, got %s", r)
	}
}

// TestInputsOverLimitRefused: an input larger than the agent's
// maxUploadBytes is refused with the limit named, and never enters the
// host's store.
func TestInputsOverLimitRefused(t *testing.T) {
	inputsEnv(t)
	const limit = 1 << 20
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"},
		AgentConfig: map[string]any{"maxUploadBytes": limit}})
	alpha := f.Hosts["alpha"]
	url, stop := inputsServeDep(inputsDepTarball(t, "too big "+t.Name()+time.Now().String(), 2*limit))
	inputsPatchFlake(t, f.Flake, url)
	dep := inputsLockDep(t, f.Flake)
	stop()
	inputsForget(t, alpha, dep)

	r := f.Ctl("deploy", "alpha", "--yes", "--flake", f.Flake)
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "limit of 1048576 bytes") {
		t.Fatalf("want a refusal naming the limit, got %s", r)
	}
	if inputsHasPath(t, alpha, dep) {
		t.Fatalf("%s entered the host's store", dep)
	}
}
