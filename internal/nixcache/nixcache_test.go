package nixcache

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNarHashBase32(t *testing.T) {
	// nix path-info --json of a file added with nix-store --add: its
	// narHash (SRI) and its recursive content address (the same hash, base32).
	got, err := NarHashBase32("sha256-ABbtnLJ0578ZFzkDgDPDOdLpi5O8z6AEHzQvzf3Oy78=")
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:1gybrvywsbrl3w2a1kxwjf5yklirqcrq00rr2wcvzrvlnaffs5h0"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if again, err := NarHashBase32(got); err != nil || again != got {
		t.Fatalf("base32 form: %q %v", again, err)
	}
	for _, bad := range []string{"", "md5-xx", "sha256-!!", "sha256:short"} {
		if _, err := NarHashBase32(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestKeys(t *testing.T) {
	// Made by `nix key generate-secret --key-name fleet-1` and
	// `nix key convert-secret-to-public`.
	sk, err := ParseSecretKey("fleet-1:3jNuCEB4qbn/OK7FALyhaKRqR6rO9ji4cI3zPbsOZZG89u3haZJdt56q3v0iGwuCuKx5mhqKINKEiPShXJKnew==\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sk.Public().String(), "fleet-1:vPbt4WmSXbeeqt79IhsLgriseZoaiiDShIj0oVySp3s="; got != want {
		t.Fatalf("public key %s, want %s", got, want)
	}
	pk, err := ParsePublicKey(sk.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint("/nix/store/aaaa-x", "sha256:0000", 12, []string{"/nix/store/b-y"})
	if fp != "1;/nix/store/aaaa-x;sha256:0000;12;/nix/store/b-y" {
		t.Fatalf("fingerprint %q", fp)
	}
	sig := sk.Sign(fp)
	if !pk.Verify(fp, sig) {
		t.Fatal("signature does not verify")
	}
	if pk.Verify(fp+"x", sig) {
		t.Fatal("signature verifies another fingerprint")
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if (PublicKey{Name: "fleet-1", Key: other.Public().(ed25519.PublicKey)}).Verify(fp, sig) {
		t.Fatal("another key verifies it")
	}
	for _, bad := range []string{"", "nocolon", "n:!!", "n:AAAA"} {
		if _, err := ParseSecretKey(bad); err == nil {
			t.Errorf("secret %q: no error", bad)
		}
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("public %q: no error", bad)
		}
	}
}

const (
	hashA = "0a5hbmxvdxn6dzxhf6h7hw6z2wkg5p4b"
	hashB = "1b5hbmxvdxn6dzxhf6h7hw6z2wkg5p4b"
)

type fakeStore map[string]PathInfo

func (s fakeStore) PathInfo(_ context.Context, h string) (PathInfo, error) {
	if pi, ok := s[h]; ok {
		return pi, nil
	}
	return PathInfo{}, ErrNotFound
}

func (s fakeStore) Dump(_ context.Context, p string, w io.Writer) error {
	_, err := io.WriteString(w, "nar of "+p)
	return err
}

func TestNarInfo(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	sk := SecretKey{Name: "k", Key: priv}
	pi := PathInfo{
		Path: "/nix/store/" + hashA + "-sys", NarHash: "sha256-ABbtnLJ0578ZFzkDgDPDOdLpi5O8z6AEHzQvzf3Oy78=", NarSize: 10912,
		References: []string{"/nix/store/" + hashB + "-dep", "/nix/store/" + hashA + "-sys"}, Deriver: "/nix/store/" + hashB + "-sys.drv",
	}
	b, err := NarInfo(pi, &sk)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		fields[k] = v
	}
	want := map[string]string{
		"StorePath": pi.Path, "URL": "nar/" + hashA + ".nar", "Compression": "none",
		"NarHash": "sha256:1gybrvywsbrl3w2a1kxwjf5yklirqcrq00rr2wcvzrvlnaffs5h0", "NarSize": "10912",
		"References": hashA + "-sys " + hashB + "-dep", "Deriver": hashB + "-sys.drv",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s: %q, want %q", k, fields[k], v)
		}
	}
	fp := Fingerprint(pi.Path, want["NarHash"], 10912, []string{"/nix/store/" + hashA + "-sys", "/nix/store/" + hashB + "-dep"})
	if !sk.Public().Verify(fp, fields["Sig"]) {
		t.Errorf("Sig %q does not verify the sorted fingerprint %q", fields["Sig"], fp)
	}
}

func TestServer(t *testing.T) {
	st := fakeStore{hashA: {Path: "/nix/store/" + hashA + "-sys", NarHash: "sha256-ABbtnLJ0578ZFzkDgDPDOdLpi5O8z6AEHzQvzf3Oy78=", NarSize: 3}}
	co := NewCoordinator()
	srv := httptest.NewServer(&Server{Store: st, States: co})
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	co.Building("r2", "/nix/store/"+hashB+"-sys")
	co.Evaluating("r3")
	co.Done("r4", "/nix/store/"+hashB+"-sys", false)
	for _, tc := range []struct {
		name, path string
		code       int
		body       string
	}{
		{"cache info", "/nix-cache-info", 200, "StoreDir: /nix/store"},
		{"narinfo", "/" + hashA + ".narinfo", 200, "URL: nar/" + hashA + ".nar"},
		{"absent narinfo", "/" + hashB + ".narinfo", 404, "not found"},
		{"nar", "/nar/" + hashA + ".nar", 200, "nar of /nix/store/" + hashA + "-sys"},
		{"absent nar", "/nar/" + hashB + ".nar", 404, "not found"},
		{"bad hash", "/nar/../etc.nar", 400, ""},
		{"bad hash narinfo", "/xyz.narinfo", 400, ""},
		{"other path", "/etc/passwd", 404, ""},
		{"have", "/panther/build-state/r1/" + hashA, 200, `"have"`},
		{"unknown", "/panther/build-state/r1/" + hashB, 200, `"unknown"`},
		{"building", "/panther/build-state/r2/" + hashB, 200, `"building"`},
		{"other", "/panther/build-state/r2/" + strings.Repeat("2", 32), 200, `"other"`},
		{"evaluating", "/panther/build-state/r3/" + hashB, 200, `"evaluating"`},
		{"failed", "/panther/build-state/r4/" + hashB, 200, `"failed"`},
		{"bad state", "/panther/build-state/r1/x", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(tc.path)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("GET %s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
	resp, err := http.Post(srv.URL+"/nix-cache-info", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

// peerNet serves one handler per peer name through Client.Dial.
func testClient(t *testing.T, peers map[string]http.Handler) *Client {
	t.Helper()
	addrs := map[string]string{}
	for name, h := range peers {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		addrs[name] = strings.TrimPrefix(s.URL, "http://")
	}
	return &Client{Port: 1, Poll: 10 * time.Millisecond, StartWait: 300 * time.Millisecond,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			name, _, _ := net.SplitHostPort(addr)
			a, ok := addrs[name]
			if !ok {
				return nil, errors.New("unknown peer " + name)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		}}
}

func TestChoose(t *testing.T) {
	path := "/nix/store/" + hashA + "-sys"
	have := fakeStore{hashA: {Path: path, NarHash: "sha256-ABbtnLJ0578ZFzkDgDPDOdLpi5O8z6AEHzQvzf3Oy78=", NarSize: 3}}
	empty := fakeStore{}
	other := NewCoordinator()
	other.Building("r", "/nix/store/"+hashB+"-x")
	failed := NewCoordinator()
	failed.Done("r", path, false)
	building := NewCoordinator()
	building.Building("r", path)
	c := testClient(t, map[string]http.Handler{
		"has":      &Server{Store: have},
		"empty":    &Server{Store: empty, States: NewCoordinator()},
		"other":    &Server{Store: empty, States: other},
		"failed":   &Server{Store: empty, States: failed},
		"building": &Server{Store: empty, States: building},
	})
	logf := func(f string, a ...any) { t.Logf(f, a...) }
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		peers []string
		want  string
	}{
		{"no peers: build", nil, ""},
		{"first has it", []string{"has", "empty"}, "has"},
		{"skip other and failed", []string{"other", "failed", "has"}, "has"},
		{"all skipped: build", []string{"other", "failed"}, ""},
		{"unreachable: build", []string{"gone"}, ""},
		{"not started: waited, then build", []string{"empty"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Choose(ctx, "r", path, tc.peers, logf)
			if err != nil || got != tc.want {
				t.Fatalf("Choose = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("waits for the builder", func(t *testing.T) {
		go func() {
			time.Sleep(100 * time.Millisecond)
			building.Done("r", path, false) // the builder failed: build yourself
		}()
		start := time.Now()
		got, err := c.Choose(ctx, "r", path, []string{"building"}, logf)
		if err != nil || got != "" || time.Since(start) < 100*time.Millisecond {
			t.Fatalf("Choose = %q, %v after %v; want to wait, then build", got, err, time.Since(start))
		}
	})
}

func TestForwarder(t *testing.T) {
	path := "/nix/store/" + hashA + "-sys"
	c := testClient(t, map[string]http.Handler{"p": &Server{Store: fakeStore{hashA: {Path: path, NarHash: "sha256-ABbtnLJ0578ZFzkDgDPDOdLpi5O8z6AEHzQvzf3Oy78=", NarSize: 3}}}})
	f, err := c.Forward("p")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/nix-cache-info", 200}, {"/" + hashA + ".narinfo", 200}, {"/nar/" + hashA + ".nar", 200},
		{"/" + hashB + ".narinfo", 404}, {"/panther/build-state/r/" + hashA, 404}, {"/x", 404},
	} {
		resp, err := http.Get(f.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	if f.Bytes.Load() == 0 {
		t.Error("no bytes counted")
	}
}
