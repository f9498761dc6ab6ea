package tailnettest

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"tailscale.com/client/local"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/tsnet"
)

// SystemTailscaled starts a node called name on this tailnet that stands
// in for the machine's tailscaled, and returns a LocalAPI client for it
// (served on 127.0.0.1 with tsnet's credentials), as used by
// [tailnet.NewSystemDialer]. The node stops when the test ends.
func (tn *Tailnet) SystemTailscaled(t testing.TB, name string, tags ...string) *local.Client {
	t.Helper()
	srv := &tsnet.Server{
		Dir:           filepath.Join(t.TempDir(), name),
		Store:         new(mem.Store),
		Ephemeral:     true,
		Hostname:      name,
		ControlURL:    tn.ControlURL,
		AdvertiseTags: tags,
		Logf:          tbLogf(t, hclog.Trace),
		UserLogf:      tbLogf(t, hclog.Debug),
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	if _, err := srv.Up(ctx); err != nil {
		t.Fatalf("tailnettest: system tailscaled %s up: %v", name, err)
	}
	addr, _, cred, err := srv.Loopback()
	if err != nil {
		t.Fatalf("tailnettest: system tailscaled %s LocalAPI: %v", name, err)
	}
	var d net.Dialer
	base := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	return &local.Client{
		OmitAuth: true,
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Sec-Tailscale", "localapi")
			r.SetBasicAuth("", cred)
			return base.RoundTrip(r)
		}),
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
