package tailnet

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHTTPHandler(t *testing.T) {
	whois := NewRecordingWhoIs(ctlID, aliceID, bobID, taggedAliceID)
	a, err := NewAuthorizer(AuthorizerConfig{
		AllowedTags: []string{"tag:panther-controller"}, AllowedUsers: []string{"alice@example.com"},
	}, whois, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var seen Identity
	h := a.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = IdentityFromContext(r.Context())
		w.Write([]byte("ok"))
	}))
	tests := []struct {
		name   string
		remote string
		want   int
	}{
		{"allowed tag", ctlID.Addr.String() + ":4000", http.StatusOK},
		{"allowed user", aliceID.Addr.String() + ":4000", http.StatusOK},
		{"other user", bobID.Addr.String() + ":4000", http.StatusForbidden},
		{"tagged node of an allowed user", taggedAliceID.Addr.String() + ":4000", http.StatusForbidden},
		{"stranger", strangerAddr.String() + ":4000", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen = Identity{}
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusOK && seen.Addr.String()+":4000" != tc.remote {
				t.Errorf("handler saw identity %+v", seen)
			}
		})
	}
	whois.FailWith(errors.New("local api down"))
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = ctlID.Addr.String() + ":4000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("whois failing: status %d, want 503", rec.Code)
	}
}
