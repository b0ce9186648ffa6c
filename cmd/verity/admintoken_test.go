package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// getWith GETs url with an Authorization header (none if empty).
func getWith(t *testing.T, url, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPIsBeyondLoopbackNeedAToken(t *testing.T) {
	gw := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(gw, []byte(`routes: []`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAdminToken, "")
	for _, tc := range []struct {
		name string
		cmd  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
	}{
		{"gateway", runGateway, []string{"--config", gw, "--registry", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"}},
		{"gateway, all interfaces", runGateway, []string{"--config", gw, "--registry", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin", ":0"}},
		{"consolidate", runConsolidate, []string{"--config", "../../examples/shop/views.yaml", "--data", t.TempDir(), "--target", "sqlite:" + filepath.Join(t.TempDir(), "v.db"), "--listen", "0.0.0.0:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, tc.cmd, tc.args...)
			wantUsageError(t, err)
			if !strings.Contains(err.Error(), envAdminToken) || !strings.Contains(err.Error(), "loopback") {
				t.Errorf("error %q does not say how to go on", err)
			}
		})
	}
}

func TestTheGatewaysAdminAPIChecksItsToken(t *testing.T) {
	regURL := startRegistry(t)
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(file, []byte(`routes: [{name: svc, match: "/api/", service: svc, stripPrefix: /api}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAdminToken, "s3cret-token")
	gw := startGateway(t, nil, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--registry", regURL)
	listen, admin := gw.listen, gw.admin
	for _, path := range []string{"/admin/routes", "/admin/config", "/metrics"} {
		for _, bad := range []string{"", "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "Bearer s3cret-token-and-more"} {
			if status, body := getWith(t, "http://"+admin+path, bad); status != http.StatusUnauthorized || !strings.Contains(body, envAdminToken) {
				t.Errorf("%s with %q: %d %s, want 401 naming the token", path, bad, status, body)
			}
		}
		if status, _ := getWith(t, "http://"+admin+path, "Bearer s3cret-token"); status != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, status)
		}
	}
	// The public side does not ask for it.
	if status, _ := getWith(t, "http://"+listen+"/api/things/1", ""); status != http.StatusOK {
		t.Errorf("through the gateway without a token: %d, want 200", status)
	}
	if err := gw.stop(); err != nil {
		t.Errorf("gateway returned %v", err)
	}
}

func TestTheConsolidatorsAdminAPIChecksItsToken(t *testing.T) {
	target := "sqlite:" + filepath.Join(t.TempDir(), "views.db")
	admin, stop := startConsolidator(t, "--config", "../../examples/shop/views.yaml", "--data", t.TempDir(), "--target", target,
		"--listen", "127.0.0.1:0", "--admin-token", "s3cret-token")
	t.Setenv(envAdminToken, "")
	if _, _, err := runCmd(t, runConsolidate, "status", "--admin", admin); err == nil || !strings.Contains(err.Error(), envAdminToken) {
		t.Errorf("status without the token: %v, want the admin API's refusal naming the token", err)
	}
	if got := mustRun(t, runConsolidate, "status", "--admin", admin, "--admin-token", "s3cret-token"); !strings.Contains(got, "orders_overview") {
		t.Errorf("status with --admin-token printed %q", got)
	}
	t.Setenv(envAdminToken, "s3cret-token")
	if got := mustRun(t, runConsolidate, "status", "--admin", admin); !strings.Contains(got, "sales_by_day") {
		t.Errorf("status with %s printed %q", envAdminToken, got)
	}
	if status, _ := getWith(t, admin+"/views", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /views without the token: %d, want 401", status)
	}
	if err := stop(); err != nil {
		t.Fatalf("consolidate returned %v", err)
	}
}
