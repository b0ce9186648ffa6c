package gateway

import (
	"io"
	"net/http"

	"github.com/verity-dev/verity"
)

// maxConfigBody bounds a configuration sent to PUT /admin/config.
const maxConfigBody = 4 << 20

// AdminHandler serves the admin API, meant for an address operators reach and clients do
// not:
//
//	GET  /admin/routes  the routes, with per-upstream breaker state and counts (JSON)
//	GET  /admin/config  the configuration being served (YAML)
//	PUT  /admin/config  replace it (YAML or JSON body); 400 names the bad field
//	POST /admin/reload  read Options.ConfigPath again and serve it
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/routes", g.adminRoutes)
	mux.HandleFunc("GET /admin/config", g.adminGetConfig)
	mux.HandleFunc("PUT /admin/config", g.adminPutConfig)
	mux.HandleFunc("POST /admin/reload", g.adminReload)
	return mux
}

// RouteStatus is a route as GET /admin/routes shows it.
type RouteStatus struct {
	Name      string           `json:"name"`
	Match     string           `json:"match"`
	Kind      string           `json:"kind"` // service, compose or command
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"` // answers of 500 or more
	ErrorRate float64          `json:"errorRate"`
	Shed      int64            `json:"shed"`
	InFlight  int64            `json:"inFlight"`
	Upstreams []UpstreamStatus `json:"upstreams"`
}

// UpstreamStatus is an upstream service of a route as GET /admin/routes shows it. Its
// counts are the service's, across every route that calls it.
type UpstreamStatus struct {
	Service   string  `json:"service"`
	Breaker   string  `json:"breaker"` // closed, half-open or open
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"errorRate"`
}

// Routes reports the routes being served, in configuration order.
func (g *Gateway) Routes() []RouteStatus {
	t := g.table.Load()
	if t == nil {
		return []RouteStatus{}
	}
	out := make([]RouteStatus, 0, len(t.routes))
	for _, rt := range t.routes {
		rs := RouteStatus{
			Name: rt.cfg.Name, Match: rt.cfg.Match, Kind: rt.cfg.kind(),
			Requests: rt.state.requests.Load(), Errors: rt.state.errors.Load(),
			Shed: rt.state.shed.Load(), InFlight: rt.state.inFlight.Load(),
			Upstreams: []UpstreamStatus{},
		}
		rs.ErrorRate = rate(rs.Errors, rs.Requests)
		for _, up := range rt.upstreams {
			us := UpstreamStatus{Service: up.service, Breaker: up.cb.State().String(),
				Requests: up.attempts.Load(), Errors: up.failures.Load()}
			us.ErrorRate = rate(us.Errors, us.Requests)
			rs.Upstreams = append(rs.Upstreams, us)
		}
		out = append(out, rs)
	}
	return out
}

func rate(errs, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(errs) / float64(total)
}

func (g *Gateway) adminRoutes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"routes": g.Routes()}, 0)
}

func (g *Gateway) adminGetConfig(w http.ResponseWriter, r *http.Request) {
	data, err := g.Config().Marshal()
	if err != nil {
		writeError(w, http.StatusInternalServerError, verity.Internal, err.Error(), 0)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(data)
}

func (g *Gateway) adminPutConfig(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, verity.Invalid, "reading the configuration: "+err.Error(), 0)
		return
	}
	cfg, err := Parse(data)
	if err == nil {
		err = g.Reload(cfg)
	}
	g.answerReload(w, err)
}

func (g *Gateway) adminReload(w http.ResponseWriter, r *http.Request) {
	if g.opts.ConfigPath == "" {
		writeError(w, http.StatusConflict, verity.Invalid, "the gateway was not started from a configuration file; use PUT /admin/config", 0)
		return
	}
	cfg, err := LoadFile(g.opts.ConfigPath)
	if err == nil {
		err = g.Reload(cfg)
	}
	g.answerReload(w, err)
}

func (g *Gateway) answerReload(w http.ResponseWriter, err error) {
	if err != nil {
		g.log.Warn("gateway: configuration refused", "err", err)
		kind := verity.KindOf(err)
		writeError(w, kind.HTTPStatus(), kind, err.Error(), 0)
		return
	}
	g.log.Info("gateway: configuration reloaded", "routes", len(g.Config().Routes))
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "routes": g.Routes()}, 0)
}
