package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/registry"
)

// startRegistry serves an embedded registry over HTTP, as `verity serve` does, with one
// instance of service "svc" registered.
func startRegistry(t *testing.T) (url string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg, err := registry.New(store, registry.Config{TTL: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	h := registry.NewHandler(reg, registry.HandlerOptions{Logger: quiet})
	mux := http.NewServeMux()
	mux.Handle("/registry", h)
	mux.Handle("/registry/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path})
	}))
	t.Cleanup(up.Close)
	if _, err := reg.Register(context.Background(), registry.Instance{Service: "svc", ID: "s1", Address: up.Listener.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return getWith(t, url, "")
}

func TestGatewayServesRoutesAndReloadsOnSignal(t *testing.T) {
	regURL := startRegistry(t)
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`routes: [{name: svc, match: "/api/", service: svc, stripPrefix: /api}]`)
	reload := make(chan os.Signal, 1)
	gw := startGateway(t, reload, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--registry", regURL)
	listen, admin, stderr := gw.listen, gw.admin, gw.stderr
	if status, body := httpGet(t, "http://"+listen+"/api/things/1"); status != 200 || !strings.Contains(body, `"/things/1"`) {
		t.Errorf("through the gateway: %d %s", status, body)
	}
	if status, body := httpGet(t, "http://"+admin+"/admin/routes"); status != 200 || !strings.Contains(body, `"name":"svc"`) {
		t.Errorf("admin routes: %d %s", status, body)
	}
	if status, body := httpGet(t, "http://"+admin+"/metrics"); status != 200 || !strings.Contains(body, "verity_gateway_requests_total") {
		t.Errorf("metrics: %d", status)
	}

	write(`routes: [{name: v2, match: "/v2/", service: svc}]`)
	reload <- os.Interrupt // any value: the signal is only a wake-up
	stderr.waitFor(t, "the reload", func(s string) bool { return strings.Contains(s, "configuration reloaded") })
	if status, body := httpGet(t, "http://"+listen+"/v2/x"); status != 200 || !strings.Contains(body, `"/v2/x"`) {
		t.Errorf("after the reload: %d %s", status, body)
	}
	write(`routes: [{name: broken, match: "/"}]`)
	reload <- os.Interrupt
	stderr.waitFor(t, "the refused reload", func(s string) bool { return strings.Contains(s, "reload refused") })
	if status, _ := httpGet(t, "http://"+listen+"/v2/x"); status != 200 {
		t.Errorf("after a refused reload: %d", status)
	}

	if err := gw.stop(); err != nil {
		t.Errorf("gateway returned %v", err)
	}
}

// runningGateway is a gateway started by startGateway.
type runningGateway struct {
	listen, admin string
	stderr        *syncBuffer
	stop          func() error // ends it and returns what gatewayMain returned
}

// startGateway runs gatewayMain with args, reloading on reload, until stop (or the test's
// end), once both its listeners listen.
func startGateway(t *testing.T, reload <-chan os.Signal, args ...string) runningGateway {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	gw := runningGateway{stderr: newSyncBuffer()}
	go func() {
		done <- gatewayMain(ctx, args, io.Discard, gw.stderr, reload, func(l, a string) { addrs <- [2]string{l, a} })
	}()
	select {
	case a := <-addrs:
		gw.listen, gw.admin = a[0], a[1]
	case err := <-done:
		cancel()
		t.Fatalf("gateway ended: %v\n%s", err, gw.stderr.String())
	}
	var once sync.Once
	var err error
	gw.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { gw.stop() })
	return gw
}

func TestGatewayUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no config", nil},
		{"no registry", []string{"--config", "x.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "x.yaml")
			os.WriteFile(file, []byte(`routes: []`), 0o644)
			args := tc.args
			for i, a := range args {
				if a == "x.yaml" {
					args[i] = file
				}
			}
			_, _, err := runCmd(t, runGateway, args...)
			wantUsageError(t, err)
		})
	}
	t.Run("a bad config names the field", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(file, []byte(`routes: [{name: a, match: "/", service: s, timeout: -1s}]`), 0o644)
		_, _, err := runCmd(t, runGateway, "--config", file, "--registry", "http://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "routes[0].timeout") {
			t.Errorf("error %v, want one naming routes[0].timeout", err)
		}
	})
}
