package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verity-dev/verity/consolidator"
)

// defaultAdmin is where `verity consolidate` serves its admin API, and where its status,
// rebuild and asof subcommands look for it.
const defaultAdmin = "127.0.0.1:8082"

const consolidateAbout = `
Runs the projections of a YAML file (docs/consolidator.md) into SQL read models, SQLite
by default (the file's target: sqlite:PATH), or PostgreSQL (postgres://...). Each follows
the log from its checkpoint, exactly once; a failing one is restarted with backoff. The
admin API (--listen) serves the projections' status, rebuilds, as-of builds, their tables'
rows as JSON and Prometheus metrics (/metrics); beyond loopback it needs a token
(VERITY_ADMIN_TOKEN), which every admin request then carries as "Authorization: Bearer TOKEN".

  verity consolidate status [NAME]                      status of one or all
  verity consolidate rebuild NAME                       rebuild from the log, swap in
  verity consolidate asof NAME --position P | --time T  build the tables as of P or T

These ask the running consolidator's admin API (--admin), or, given --config, work
directly on the database and the store (--data or --server) while none runs.
` + storeAbout + `

Examples:
  verity consolidate --config examples/shop/views.yaml --server http://127.0.0.1:2113
  verity consolidate --config views.yaml --data ./verity-data --target postgres://postgres@127.0.0.1:5432/app?sslmode=disable
  verity consolidate status
  verity consolidate asof orders_overview --time 2025-01-31T09:00:00Z
  curl -s http://127.0.0.1:8082/views/orders_overview/tables/orders_overview?limit=10`

// runConsolidate is `verity consolidate`.
func runConsolidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := newFlagSet("consolidate", "verity consolidate [status|rebuild|asof] [flags]", consolidateAbout)
	sf := addStoreFlags(fs)
	config := fs.String("config", "", "the projections' YAML `FILE`")
	target := fs.String("target", "", "the read models' database `DSN` (sqlite:PATH or postgres://...),\ninstead of the file's target")
	listen := fs.String("listen", defaultAdmin, "serve the admin API on `ADDR`; empty for none")
	admin := fs.String("admin", "http://"+defaultAdmin, "the running consolidator's admin API `URL`, for status, rebuild and asof")
	tokenFlag := fs.String("admin-token", "", adminTokenUsage+"\n(status, rebuild and asof send it)")
	position := fs.Uint64("position", 0, "asof: the log `POSITION` to build up to")
	var at timeFlag
	fs.Var(&at, "time", "asof: build up to the last event committed at or before `TIME` (RFC 3339)")
	asJSON := fs.Bool("json", false, "status: print JSON")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	switch sub {
	case "":
		if len(pos) > 0 {
			return usagef("consolidate", "unknown subcommand %q; want status, rebuild or asof", pos[0])
		}
		if *config == "" {
			return usagef("consolidate", "give --config FILE, the projections to run")
		}
		return runConsolidator(ctx, sf, *config, *target, *listen, adminToken(*tokenFlag), stdout, stderr)
	case "status", "rebuild", "asof":
	default:
		return usagef("consolidate", "unknown subcommand %q; want status, rebuild or asof", sub)
	}
	name := ""
	switch {
	case len(pos) > 1:
		return usagef("consolidate", "%s takes one projection name, got %q", sub, pos)
	case len(pos) == 1:
		name = pos[0]
	case sub != "status":
		return usagef("consolidate", "%s needs a projection NAME", sub)
	}
	if sub == "asof" && (*position == 0) == at.t.IsZero() {
		return usagef("consolidate", "asof needs --position P or --time T (one of them)")
	}
	var ops consolidateOps
	if *config != "" {
		local, err := openLocalConsolidator(sf, *config, *target, stderr)
		if err != nil {
			return err
		}
		defer local.close()
		ops = local
	} else {
		ops, err = newAdminClient(*admin, adminToken(*tokenFlag))
		if err != nil {
			return err
		}
	}
	switch sub {
	case "status":
		var sts []consolidator.Status
		if name != "" {
			st, err := ops.status(ctx, name)
			if err != nil {
				return err
			}
			sts = []consolidator.Status{st}
		} else if sts, err = ops.statuses(ctx); err != nil {
			return err
		}
		return printStatuses(stdout, sts, *asJSON)
	case "rebuild":
		st, err := ops.rebuild(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s rebuilt: generation %d at position %d\n", name, st.Generation, st.Position)
		return nil
	}
	res, err := ops.asOf(ctx, name, consolidator.AsOf{Position: *position, Time: at.t})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s as of position %d:", name, res.Position)
	for _, t := range sortedValues(res.Tables) {
		fmt.Fprintf(stdout, " %s", t)
	}
	fmt.Fprintln(stdout)
	return nil
}

func sortedValues(m map[string]string) []string { return slices.Sorted(maps.Values(m)) }

// loadConsolidator opens the store and a consolidator of the file's projections.
func loadConsolidator(sf *storeFlags, configPath, target string, reg prometheus.Registerer, stderr io.Writer) (*commandStore, *consolidator.Consolidator, *consolidator.FileConfig, error) {
	fc, err := consolidator.LoadConfig(configPath)
	if err != nil {
		return nil, nil, nil, &usageError{cmd: "consolidate", err: err}
	}
	if target == "" {
		target = fc.Target
	}
	if target == "" {
		return nil, nil, nil, usagef("consolidate", "%s has no target: give --target sqlite:PATH or postgres://...", configPath)
	}
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok && path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, nil, nil, err
		}
	}
	store, err := sf.open(false, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := consolidator.New(store, consolidator.Config{DSN: target, Logger: logger, Registerer: reg})
	if err == nil {
		if err = c.AddConfig(fc); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, nil, nil, store.finish(err)
	}
	fc.Target = target
	return store, c, fc, nil
}

// runConsolidator runs the projections until ctx ends, with the admin API on listen.
func runConsolidator(ctx context.Context, sf *storeFlags, configPath, target, listen, token string, stdout, stderr io.Writer) (err error) {
	var reg *prometheus.Registry
	var ln net.Listener
	if listen != "" {
		if _, err := guardAdmin("consolidate", "--listen", listen, token, http.NotFoundHandler()); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", listen); err != nil {
			return usagef("consolidate", "--listen %s: %v", listen, err)
		}
		defer ln.Close() // if Serve never takes it
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var registerer prometheus.Registerer
	if reg != nil {
		registerer = reg
	}
	store, c, fc, err := loadConsolidator(sf, configPath, target, registerer, stderr)
	if err != nil {
		return err
	}
	defer func() { err = store.finish(errors.Join(err, c.Close())) }()
	var srv *http.Server
	serveErr := make(chan error, 1)
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("/views", c.Handler())
		mux.Handle("/views/", c.Handler())
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		h, err := guardAdmin("consolidate", "--listen", listen, token, mux)
		if err != nil { // checked above; the address is the same
			return err
		}
		srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			<-serveErr
		}()
		fmt.Fprintf(stdout, "admin API on http://%s (GET /views, /metrics)\n", ln.Addr())
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "consolidating %d projections into %s\n", len(fc.Projections), redactDSN(fc.Target))
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		serveErr <- err // for the deferred shutdown
		return fmt.Errorf("admin API: %w", err)
	}
}

// redactDSN hides a password in a PostgreSQL URL.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// consolidateOps is what status, rebuild and asof do, through the admin API or locally.
type consolidateOps interface {
	status(ctx context.Context, name string) (consolidator.Status, error)
	statuses(ctx context.Context) ([]consolidator.Status, error)
	rebuild(ctx context.Context, name string) (consolidator.Status, error)
	asOf(ctx context.Context, name string, at consolidator.AsOf) (consolidator.AsOfResult, error)
}

// localConsolidator works on the database and the store directly, nothing running.
type localConsolidator struct {
	store *commandStore
	c     *consolidator.Consolidator
}

func openLocalConsolidator(sf *storeFlags, configPath, target string, stderr io.Writer) (*localConsolidator, error) {
	store, c, _, err := loadConsolidator(sf, configPath, target, nil, stderr)
	if err != nil {
		return nil, err
	}
	return &localConsolidator{store: store, c: c}, nil
}

func (l *localConsolidator) close() { l.store.finish(l.c.Close()) }

func (l *localConsolidator) status(ctx context.Context, name string) (consolidator.Status, error) {
	return l.c.Status(ctx, name)
}

func (l *localConsolidator) statuses(ctx context.Context) ([]consolidator.Status, error) {
	return l.c.Statuses(ctx)
}

func (l *localConsolidator) rebuild(ctx context.Context, name string) (consolidator.Status, error) {
	if err := l.c.Rebuild(ctx, name); err != nil {
		return consolidator.Status{}, err
	}
	return l.c.Status(ctx, name)
}

func (l *localConsolidator) asOf(ctx context.Context, name string, at consolidator.AsOf) (consolidator.AsOfResult, error) {
	return l.c.BuildAsOf(ctx, name, at)
}

// adminClient asks a running consolidator's admin API, with its token if it has one.
type adminClient struct{ base, token string }

func newAdminClient(admin, token string) (*adminClient, error) {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usagef("consolidate", "--admin %q: want http://HOST:PORT", admin)
	}
	return &adminClient{base: strings.TrimSuffix(admin, "/"), token: token}, nil
}

func (a *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the consolidator's admin API at %s: %v; is 'verity consolidate --config FILE' running (its --listen)?", a.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Kind, Message string }
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return errors.New(e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(body, out)
}

func (a *adminClient) status(ctx context.Context, name string) (st consolidator.Status, err error) {
	return st, a.do(ctx, "GET", "/views/"+url.PathEscape(name), &st)
}

func (a *adminClient) statuses(ctx context.Context) ([]consolidator.Status, error) {
	var out struct{ Views []consolidator.Status }
	return out.Views, a.do(ctx, "GET", "/views", &out)
}

func (a *adminClient) rebuild(ctx context.Context, name string) (st consolidator.Status, err error) {
	return st, a.do(ctx, "POST", "/views/"+url.PathEscape(name)+"/rebuild?wait=true", &st)
}

func (a *adminClient) asOf(ctx context.Context, name string, at consolidator.AsOf) (res consolidator.AsOfResult, err error) {
	q := fmt.Sprintf("position=%d", at.Position)
	if !at.Time.IsZero() {
		q = "time=" + url.QueryEscape(at.Time.Format(time.RFC3339Nano))
	}
	return res, a.do(ctx, "POST", "/views/"+url.PathEscape(name)+"/asof?"+q, &res)
}

func printStatuses(w io.Writer, sts []consolidator.Status, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sts)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPOSITION\tLAG EVENTS\tLAG\tERRORS\tLAST ERROR")
	for _, st := range sts {
		lastErr := st.LastError
		if len(lastErr) > 80 {
			lastErr = lastErr[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", st.Name, st.State, st.Position, st.LagEvents,
			time.Duration(st.LagSeconds*float64(time.Second)).Round(time.Millisecond), st.Errors, lastErr)
	}
	return tw.Flush()
}
