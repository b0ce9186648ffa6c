package server

import (
	"net/http"
	"sync/atomic"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// PlatformPrefix is where the platform parts run beside the server (the gateway's admin
// API, the consolidator's read models) are served to the console, when a caller such as
// `verity dev` sets them with SetPlatform.
const PlatformPrefix = "/ui/platform/"

// platform holds the handler of SetPlatform; nil until then.
type platform struct{ h atomic.Pointer[http.Handler] }

// SetPlatform serves h under PlatformPrefix (with the prefix stripped) to administrators:
// `verity dev` mounts the gateway's admin API at /admin/ and the consolidator's at /views
// there, so that the console can show routes, breakers and read models. Until it is called,
// or with h nil, the prefix answers 404. It may be called at any time.
func (s *Server) SetPlatform(h http.Handler) {
	if h == nil {
		s.platform.h.Store(nil)
		return
	}
	s.platform.h.Store(&h)
}

func (s *Server) servePlatform(w http.ResponseWriter, r *http.Request) {
	p, err := s.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	switch {
	case err != nil:
		platformError(w, verity.KindOf(err), err.Error())
		return
	case p.Anonymous():
		platformError(w, verity.Unauthenticated, "sign in as an administrator to see the platform's admin APIs")
		return
	case !p.IsAdmin():
		platformError(w, verity.PermissionDenied, "the platform's admin APIs are for administrators")
		return
	}
	h := s.platform.h.Load()
	if h == nil {
		platformError(w, verity.NotFound, "no platform parts run in this server (verity dev runs the gateway and the consolidator beside it)")
		return
	}
	http.StripPrefix(PlatformPrefix[:len(PlatformPrefix)-1], *h).ServeHTTP(w, r)
}

func platformError(w http.ResponseWriter, kind verity.ErrorKind, msg string) {
	httpjson.Write(w, kind.HTTPStatus(), map[string]any{"error": map[string]string{"kind": kind.String(), "message": msg}})
}

// crossOriginProtection refuses state-changing requests (POST, PUT, DELETE...) that a
// browser sends from another site (by Sec-Fetch-Site, or Origin against Host): a browser
// that once answered the API's Basic prompt would otherwise attach those credentials to a
// forged request from any page. Requests from the console itself (same origin) and from
// programs (no such headers) pass.
func crossOriginProtection() *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		platformError(w, verity.PermissionDenied, r.Method+" "+r.URL.Path+": a cross-origin request from a browser is refused (the API and console accept same-origin browser requests and programs)")
	}))
	return p
}
