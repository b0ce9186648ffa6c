package server_test

import (
	"net/http"
	"strings"
	"testing"

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
