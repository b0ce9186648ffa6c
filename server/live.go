package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/sse"
	"github.com/verity-dev/verity/protocol/httpapi"
)

// LivePath is where the console follows answers that have no stream of their own (consumer
// groups, read models, registry, gateway routes): GET /ui/live?path=P&path=Q, with Accept:
// text/event-stream, sends a "changed" event naming P each time the answer to GET P, as the
// caller would get it, is not what it was at the last look, starting with one for each
// path at once. The server looks every Config.LiveEvery; the browser fetches only what
// changed.
const LivePath = "/ui/live"

// livePaths are the answers /ui/live follows: reads that are cheap to take once a second,
// and none that streams.
var livePaths = []string{
	"/subscriptions",
	"/registry/services",
	"/registry/instances",
	PlatformPrefix + "views",
	PlatformPrefix + "admin/routes",
}

// livePing is how many looks without a change go by before a comment line keeps the
// connection known to be alive (to proxies, and to the browser).
const livePing = 15

// serveLive serves LivePath: it takes each path's answer through h, the server's own
// routes, with the caller's credentials, so that a caller is told only of changes to what
// it may read (a refusal is an answer like any other: the page shows it when it fetches).
// Without valid credentials where the server wants them, the request fails with 401
// before the stream starts, which brings up the console's sign-in.
func (s *Server) serveLive(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		paths := r.URL.Query()["path"]
		if len(paths) == 0 {
			platformError(w, verity.Invalid, fmt.Sprintf("%s needs one or more path parameters, of %v", LivePath, livePaths))
			return
		}
		for _, p := range paths {
			if !slices.Contains(livePaths, p) {
				platformError(w, verity.Invalid, fmt.Sprintf("%s cannot follow %q: it follows %v", LivePath, p, livePaths))
				return
			}
		}
		slices.Sort(paths)
		paths = slices.Compact(paths)
		last := make([][sha256.Size]byte, len(paths))
		for i, p := range paths {
			a := s.look(r, h, p)
			if a.status == http.StatusUnauthorized {
				for k, v := range a.header {
					w.Header()[k] = v
				}
				w.WriteHeader(a.status)
				w.Write(a.body.Bytes())
				return
			}
			last[i] = a.sum()
		}
		sw := sse.Start(w, httpapi.DefaultSSEWriteTimeout)
		defer sw.End()
		changed := func(p string) bool {
			data, _ := json.Marshal(map[string]string{"path": p})
			return sw.Message("changed", "", data) == nil
		}
		for _, p := range paths {
			if !changed(p) {
				return
			}
		}

		// The stream ends when shutdown begins, whatever the request's Accept header
		// (endStreamsAtShutdown goes by it; a client such as curl sends none).
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(s.streams, cancel)()
		r = r.WithContext(ctx)
		tick := time.NewTicker(s.cfg.LiveEvery)
		defer tick.Stop()
		quiet := 0
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			sent := false
			for i, p := range paths {
				a := s.look(r, h, p)
				if a.status == http.StatusUnauthorized {
					// The caller's credentials no longer hold (user deleted, password
					// changed, token revoked): the page learns it when it fetches, and
					// the stream ends rather than check failing credentials forever.
					changed(p)
					return
				}
				sum := a.sum()
				if sum == last[i] {
					continue
				}
				last[i] = sum
				if !changed(p) {
					return
				}
				sent = true
			}
			if quiet++; sent {
				quiet = 0
			} else if quiet >= livePing {
				if sw.Comment("ping") != nil {
					return
				}
				quiet = 0
			}
		}
	}
}

// answer is a response taken in memory.
type answer struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *answer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

// sum stands for the answer in comparisons: its status and body.
func (a *answer) sum() [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", a.status)
	h.Write(a.body.Bytes())
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// look answers GET path through h as r's caller would be answered.
func (s *Server) look(r *http.Request, h http.Handler, path string) *answer {
	a := &answer{header: http.Header{}}
	ctx, cancel := context.WithTimeout(r.Context(), statsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		a.status = http.StatusInternalServerError
		return a
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	if v := r.Header.Get("Authorization"); v != "" {
		req.Header.Set("Authorization", v)
	}
	req.Header.Set("Accept", "application/json")
	h.ServeHTTP(a, req)
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a
}
