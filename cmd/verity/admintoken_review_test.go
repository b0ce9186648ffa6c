package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The admin token is checked as HTTP defines the header: the scheme is case-insensitive
// ("bearer" is Bearer, as the server's own API takes it), and a token read from a file into
// VERITY_ADMIN_TOKEN with its trailing newline still works (no header can carry "\n", so
// the admin API would refuse every request, consolidate status included).
func TestTheAdminTokenIsReadAsHTTPAndShellsGiveIt(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, c := range []struct {
		name, env, authorization string
		want                     int
	}{
		{"the token as given", "s3cret", "Bearer s3cret", http.StatusNoContent},
		{"a lower-case scheme", "s3cret", "bearer s3cret", http.StatusNoContent},
		{"an upper-case scheme", "s3cret", "BEARER s3cret", http.StatusNoContent},
		{"a token read from a file with its newline", "s3cret\n", "Bearer s3cret", http.StatusNoContent},
		{"another token", "s3cret", "Bearer s3cre", http.StatusUnauthorized},
		{"the token in another scheme", "s3cret", "Basic s3cret", http.StatusUnauthorized},
		{"the token alone", "s3cret", "s3cret", http.StatusUnauthorized},
		{"no header", "s3cret", "", http.StatusUnauthorized},
		{"a token of the wrong case", "s3cret", "Bearer S3CRET", http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(envAdminToken, c.env)
			h, err := guardAdmin("gateway", "--admin", "0.0.0.0:8081", adminToken(""), ok)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/admin/routes", nil)
			if c.authorization != "" {
				req.Header.Set("Authorization", c.authorization)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != c.want {
				t.Errorf("%q against token %q: %d, want %d", c.authorization, c.env, w.Code, c.want)
			}
		})
	}

	t.Run("a token of blanks is no token", func(t *testing.T) {
		t.Setenv(envAdminToken, " \n")
		if _, err := guardAdmin("gateway", "--admin", "0.0.0.0:8081", adminToken(""), ok); err == nil {
			t.Error("a blank token guards an admin API beyond loopback")
		}
	})
}
