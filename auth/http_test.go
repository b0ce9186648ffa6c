package auth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// api sends a request to the user API and decodes the JSON answer into out (if not nil).
type api struct {
	t   *testing.T
	url string
}

func (a api) do(method, path, authz, body string, out any) int {
	a.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, a.url+path, strings.NewReader(body))
	mustNil(a.t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	mustNil(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustNil(a.t, err)
	if resp.StatusCode >= 400 || out != nil {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			a.t.Fatalf("%s %s: content type %q, body %s", method, path, ct, b)
		}
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Kind, Message string }
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Kind == "" || e.Error.Message == "" {
			a.t.Fatalf("%s %s: error body %s is not {\"error\":{\"kind\",\"message\"}}", method, path, b)
		}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: body %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func TestHTTPUserAPI(t *testing.T) {
	svc := openService(t, newStore(t), Config{AdminPassword: "changeit"})
	mux := http.NewServeMux()
	for _, p := range []string{"/users", "/users/", "/tokens", "/tokens/"} {
		mux.Handle(p, svc.Handler())
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a := api{t: t, url: srv.URL}
	root := basic("admin", "changeit")

	steps := []struct {
		name               string
		method, path, auth string
		body               string
		want               int
	}{
		{"anonymous may not list users", "GET", "/users", "", "", http.StatusUnauthorized},
		{"a wrong password may not list users", "GET", "/users", basic("admin", "nope"), "", http.StatusUnauthorized},
		{"the admin creates bob", "POST", "/users", root, `{"name":"bob","password":"pw1","roles":["readers"]}`, http.StatusCreated},
		{"creating bob again conflicts", "POST", "/users", root, `{"name":"bob","password":"pw1"}`, http.StatusConflict},
		{"an unknown field is refused", "POST", "/users", root, `{"name":"eve","password":"pw","admin":true}`, http.StatusBadRequest},
		{"malformed JSON is refused", "POST", "/users", root, `{"name":`, http.StatusBadRequest},
		{"an empty body is refused", "POST", "/users", root, ``, http.StatusBadRequest},
		{"bob may not list users", "GET", "/users", basic("bob", "pw1"), "", http.StatusForbidden},
		{"bob may not create users", "POST", "/users", basic("bob", "pw1"), `{"name":"eve","password":"pw"}`, http.StatusForbidden},
		{"the admin reads bob", "GET", "/users/bob", root, "", http.StatusOK},
		{"a missing user is not found", "GET", "/users/nobody", root, "", http.StatusNotFound},
		{"the admin changes bob's password", "POST", "/users/bob/password", root, `{"password":"pw2"}`, http.StatusNoContent},
		{"bob's old password stops working", "GET", "/users", basic("bob", "pw1"), "", http.StatusUnauthorized},
		{"the admin disables bob", "PATCH", "/users/bob", root, `{"disabled":true}`, http.StatusOK},
		{"disabled bob cannot log in", "GET", "/users", basic("bob", "pw2"), "", http.StatusUnauthorized},
		{"a bad ttl is refused", "POST", "/tokens", root, `{"user":"admin","name":"ci","ttl":"soon"}`, http.StatusBadRequest},
		{"an unknown endpoint is not found", "GET", "/users/bob/friends", root, "", http.StatusNotFound},
	}
	for _, s := range steps {
		if got := a.do(s.method, s.path, s.auth, s.body, nil); got != s.want {
			t.Fatalf("%s: %s %s answered %d, want %d", s.name, s.method, s.path, got, s.want)
		}
	}

	var list struct{ Users []User }
	if got := a.do("GET", "/users", root, "", &list); got != http.StatusOK {
		t.Fatalf("list users: %d", got)
	}
	if len(list.Users) != 2 || list.Users[1].Name != "bob" || !list.Users[1].Disabled || list.Users[1].Roles[0] != "readers" {
		t.Fatalf("users %+v", list.Users)
	}

	// A token, used on the API itself, then revoked.
	var issued struct {
		Token string
		TokenInfo
	}
	if got := a.do("POST", "/tokens", root, `{"user":"admin","name":"ci","ttl":"1h"}`, &issued); got != http.StatusCreated {
		t.Fatalf("issue token: %d", got)
	}
	if issued.Token == "" || issued.Name != "ci" || issued.User != "admin" {
		t.Fatalf("issued %+v", issued)
	}
	bearer := "Bearer " + issued.Token
	var tokens struct{ Tokens []map[string]any }
	if got := a.do("GET", "/tokens?user=admin", bearer, "", &tokens); got != http.StatusOK {
		t.Fatalf("list tokens with the token: %d", got)
	}
	if len(tokens.Tokens) != 1 || tokens.Tokens[0]["name"] != "ci" {
		t.Fatalf("tokens %+v", tokens.Tokens)
	}
	for _, v := range tokens.Tokens[0] {
		if s, ok := v.(string); ok && strings.Contains(s, issued.Token) {
			t.Fatal("the token list shows the token")
		}
	}
	if got := a.do("DELETE", "/tokens/admin/ci", root, "", nil); got != http.StatusNoContent {
		t.Fatalf("revoke: %d", got)
	}
	if got := a.do("GET", "/users", bearer, "", nil); got != http.StatusUnauthorized {
		t.Fatalf("revoked token answered %d, want 401", got)
	}
	if got := a.do("DELETE", "/users/bob", root, "", nil); got != http.StatusNoContent {
		t.Fatalf("delete bob: %d", got)
	}
	if got := a.do("GET", "/users/bob", root, "", nil); got != http.StatusNotFound {
		t.Fatalf("deleted bob answered %d, want 404", got)
	}
}

func TestHTTPUnauthenticatedAsksForBasic(t *testing.T) {
	svc := openService(t, newStore(t), Config{})
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/users", nil))
	if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("got %d with WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("answers of the user API must not be cached")
	}
}
