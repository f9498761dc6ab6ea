package nixcache_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/internal/nixcache"
	"github.com/pantheros/panther/lab/nixtest"
)

// buildWithRef builds a store path that references another one, with the
// real nix, and returns both.
func buildWithRef(t *testing.T, env nixtest.NixEnv) (top, dep string) {
	t.Helper()
	expr := `let dep = builtins.toFile "panther-cache-dep" "dependency"; in derivation {
	  name = "panther-cache-top"; system = builtins.currentSystem; builder = "/bin/sh";
	  args = [ "-c" "echo ${dep} > $out" ]; }`
	cmd := exec.Command("nix", "build", "--json", "--no-link", "--impure", "--expr", expr)
	cmd.Env = env.Environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix build: %v\n%s", err, stderr.String())
	}
	top, err = nix.ParseBuildJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(top)
	if err != nil {
		t.Fatal(err)
	}
	return top, strings.TrimSpace(string(b))
}

func genKey(t *testing.T, env nixtest.NixEnv, name string) nixcache.SecretKey {
	t.Helper()
	cmd := exec.Command("nix", "key", "generate-secret", "--key-name", name)
	cmd.Env = env.Environ
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix key generate-secret: %v", err)
	}
	k, err := nixcache.ParseSecretKey(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// narMangler rewrites NAR bodies on their way out.
type narMangler struct {
	next   http.Handler
	mangle func([]byte) []byte
}

func (m narMangler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/nar/") {
		m.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	m.next.ServeHTTP(rec, r)
	_, _ = w.Write(m.mangle(rec.Body.Bytes()))
}

// TestSubstituteWithNix runs the real nix against the cache: it substitutes
// a signed closure into a fresh store, and refuses a path signed by a key it
// does not trust and a corrupt or truncated NAR, none of which enters the
// store.
func TestSubstituteWithNix(t *testing.T) {
	env := nixtest.Env(t)
	log := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn})
	served := nix.New(nix.Options{ExtraConfig: env.ExtraConfig}, log)
	top, dep := buildWithRef(t, env)
	fleet := genKey(t, env, "fleet-1")
	stranger := genKey(t, env, "stranger-1")
	store := nix.CacheStore{N: served}

	for _, tc := range []struct {
		name    string
		handler http.Handler
		wantErr string // "" = substituted
	}{
		{"signed by the fleet key", &nixcache.Server{Store: store, Key: &fleet}, ""},
		{"signed by an unknown key", &nixcache.Server{Store: store, Key: &stranger}, "lacks a valid signature"},
		{"unsigned", &nixcache.Server{Store: store}, "lacks a valid signature"},
		{"corrupt NAR", narMangler{&nixcache.Server{Store: store, Key: &fleet}, func(b []byte) []byte {
			b = bytes.Clone(b)
			i := bytes.Index(b, []byte("dependency"))
			if i < 0 {
				i = len(b) / 2
			}
			b[i] ^= 0x20
			return b
		}}, "hash mismatch"},
		{"truncated NAR", narMangler{&nixcache.Server{Store: store, Key: &fleet}, func(b []byte) []byte { return b[:len(b)/2] }}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			root := t.TempDir()
			target := nix.New(nix.Options{ExtraConfig: append(append([]string{}, env.ExtraConfig...), "store = "+root)}, log)
			err := target.CopyFrom(context.Background(), srv.URL, top, []string{fleet.Public().String()}, nil)
			valid := func(p string) bool { // the chroot store's database says
				cmd := exec.Command("nix", "path-info", "--store", root, p)
				cmd.Env = env.Environ
				return cmd.Run() == nil
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("substitute: %v", err)
				}
				for _, p := range []string{top, dep} {
					if !valid(p) {
						t.Errorf("%s is not valid in the target store", p)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("nix substituted it")
			}
			var ne *nix.Error
			if !errors.As(err, &ne) || !strings.Contains(ne.StderrTail, tc.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
			t.Logf("refused: %s", ne.Summary())
			if valid(top) {
				t.Errorf("%s entered the store", top)
			}
			if _, err := os.Stat(filepath.Join(root, top)); err == nil {
				t.Errorf("%s exists in the store's directory", top)
			}
			// dep is content-addressed (builtins.toFile): nix takes it
			// unsigned, since its content proves it, but never corrupt.
			if strings.Contains(tc.name, "NAR") && valid(dep) {
				t.Errorf("%s entered the store", dep)
			}
		})
	}
}
