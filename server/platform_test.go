package server_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/server"
)

func TestThePlatformIsServedToAdministratorsOnly(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin"})
	base := "https://" + srv.Addr().String()
	hc := tlsClient(pool)
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	if err := srv.Auth().CreateUser(t.Context(), admin, "ann", "ann-pw", nil); err != nil {
		t.Fatal(err)
	}

	code, body := httpDo(t, hc, "GET", base+"/ui/platform/views", "", "admin", "s3cret-admin")
	if code != http.StatusNotFound || !strings.Contains(body, "verity dev") {
		t.Errorf("before SetPlatform: %d %s, want 404 saying what runs them", code, body)
	}
	srv.SetPlatform(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("platform saw " + r.URL.Path))
	}))
	if code, body := httpDo(t, hc, "GET", base+"/ui/platform/views", "", "admin", "s3cret-admin"); code != http.StatusOK || body != "platform saw /views" {
		t.Errorf("admin: %d %q, want the platform's answer for /views", code, body)
	}
	if code, _ := httpDo(t, hc, "GET", base+"/ui/platform/views", "", "ann", "ann-pw"); code != http.StatusForbidden {
		t.Errorf("a user who is not an admin: %d, want 403", code)
	}
	if code, _ := httpDo(t, hc, "GET", base+"/ui/platform/views", "", "", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", code)
	}
	srv.SetPlatform(nil)
	if code, _ := httpDo(t, hc, "GET", base+"/ui/platform/views", "", "admin", "s3cret-admin"); code != http.StatusNotFound {
		t.Errorf("after SetPlatform(nil): %d, want 404", code)
	}
}

func TestCrossSiteBrowserWritesAreRefused(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	base := "http://" + srv.Addr().String()
	post := func(site string) (int, string) {
		req, err := http.NewRequest("POST", base+"/streams/order-1", strings.NewReader(`{"type":"T","data":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post("cross-site"); code != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
		t.Errorf("a cross-site browser POST: %d %s, want 403 saying why", code, body)
	}
	if _, err := srv.Store().ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{}); !errors.Is(err, verity.ErrNotFound) {
		t.Errorf("the refused append wrote something: %v", err)
	}
	for _, site := range []string{"same-origin", ""} {
		if code, body := post(site); code/100 != 2 {
			t.Errorf("a POST with Sec-Fetch-Site %q: %d %s, want it accepted", site, code, body)
		}
	}
}
