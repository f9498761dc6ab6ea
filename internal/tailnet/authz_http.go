package tailnet

import (
	"errors"
	"net/http"
	"strings"
)

// HTTPHandler admits an HTTP request to next only if the calling tailnet
// peer passes the same check as a gRPC call ([Authorizer.Allowed]): 401
// when the peer cannot be identified, 403 when it is not allowed, 503 when
// the tailnet cannot say who it is. The peer's [Identity] is in the
// request's context for next (see [IdentityFromContext]). Serve it on a
// tailnet listener only: the remote address must be a tailnet address.
func (a *Authorizer) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := r.Method + " " + r.URL.Path
		id, err := a.whois.WhoIs(r.Context(), r.RemoteAddr)
		if err != nil {
			a.log.Warn("http refused", "request", what, "peer_addr", r.RemoteAddr, "error", err)
			if errors.Is(err, ErrUnknownPeer) {
				http.Error(w, "not a known tailnet peer", http.StatusUnauthorized)
				return
			}
			http.Error(w, "cannot identify the caller", http.StatusServiceUnavailable)
			return
		}
		if err := a.Allowed(id); err != nil {
			a.log.Warn("http denied", "request", what, "peer", id.NodeName, "login", id.LoginName,
				"tags", strings.Join(id.Tags, ","), "peer_addr", r.RemoteAddr)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		a.log.Debug("http", "request", what, "peer", id.NodeName, "login", id.LoginName,
			"tags", strings.Join(id.Tags, ","), "peer_addr", r.RemoteAddr)
		next.ServeHTTP(w, r.WithContext(withIdentity(r.Context(), id)))
	})
}
