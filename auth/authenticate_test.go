package auth

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestBasicAuthentication(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, newStore(t), Config{AdminPassword: "changeit"})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "s3cret", []string{"readers"}))
	mustNil(t, svc.CreateUser(ctx, admin, "dora", "pw", nil))
	disabled := true
	mustNil(t, svc.UpdateUser(ctx, admin, "dora", UserUpdate{Disabled: &disabled}))

	t.Run("right password gives the user and their roles", func(t *testing.T) {
		p, err := svc.Authenticate(ctx, basic("bob", "s3cret"))
		mustNil(t, err)
		if p.Name != "bob" || !p.HasRole("readers") || p.IsAdmin() {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("the scheme is case-insensitive", func(t *testing.T) {
		_, err := svc.Authenticate(ctx, "bAsIc "+strings.TrimPrefix(basic("bob", "s3cret"), "Basic "))
		mustNil(t, err)
	})
	t.Run("the bootstrapped admin logs in", func(t *testing.T) {
		p, err := svc.Authenticate(ctx, basic("admin", "changeit"))
		mustNil(t, err)
		if !p.IsAdmin() {
			t.Fatalf("got %+v, want an admin", p)
		}
	})
	t.Run("an empty header is the anonymous caller", func(t *testing.T) {
		p, err := svc.Authenticate(ctx, "")
		mustNil(t, err)
		if !p.Anonymous() {
			t.Fatalf("got %+v", p)
		}
	})
	wrong := []struct{ name, header string }{
		{"wrong password", basic("bob", "guess")},
		{"unknown user", basic("mallory", "s3cret")},
		{"disabled user with the right password", basic("dora", "pw")},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("bob"))},
		{"not base64", "Basic !!!"},
		{"nothing after Basic", "Basic"},
		{"unknown scheme", "Digest abc"},
		{"empty user", basic("", "x")},
		{"oversized header", "Basic " + strings.Repeat("A", 5000)},
	}
	for _, c := range wrong {
		t.Run(c.name+" is unauthenticated", func(t *testing.T) {
			_, err := svc.Authenticate(ctx, c.header)
			wantKind(t, err, verity.Unauthenticated)
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "guess") {
				t.Fatalf("error %q echoes the password", err)
			}
		})
	}
	t.Run("wrong password and unknown user answer alike", func(t *testing.T) {
		_, e1 := svc.Authenticate(ctx, basic("bob", "guess"))
		_, e2 := svc.Authenticate(ctx, basic("mallory", "guess"))
		if e1.Error() != e2.Error() {
			t.Fatalf("%q and %q differ: they tell whether the user exists", e1, e2)
		}
	})
}

func TestCachedVerificationEndsWithPasswordChange(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	svc := openService(t, newStore(t), Config{Now: clk.Now})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "old", nil))
	for range 2 { // the second is served from the cache
		_, err := svc.Authenticate(ctx, basic("bob", "old"))
		mustNil(t, err)
	}
	if n := len(svc.creds); n != 1 {
		t.Fatalf("credential cache holds %d entries, want 1", n)
	}
	mustNil(t, svc.ChangePassword(ctx, admin, "bob", "new"))
	_, err := svc.Authenticate(ctx, basic("bob", "old"))
	wantKind(t, err, verity.Unauthenticated)
	_, err = svc.Authenticate(ctx, basic("bob", "new"))
	mustNil(t, err)

	disabled := true
	mustNil(t, svc.UpdateUser(ctx, admin, "bob", UserUpdate{Disabled: &disabled}))
	_, err = svc.Authenticate(ctx, basic("bob", "new"))
	wantKind(t, err, verity.Unauthenticated)

	enabled := false
	mustNil(t, svc.UpdateUser(ctx, admin, "bob", UserUpdate{Disabled: &enabled, Roles: &[]string{"writers"}}))
	p, err := svc.Authenticate(ctx, basic("bob", "new"))
	mustNil(t, err)
	if !p.HasRole("writers") {
		t.Fatalf("cached login has roles %v, want the new role writers", p.Roles)
	}
	mustNil(t, svc.DeleteUser(ctx, admin, "bob"))
	_, err = svc.Authenticate(ctx, basic("bob", "new"))
	wantKind(t, err, verity.Unauthenticated)
}

func TestBearerAuthentication(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	svc := openService(t, newStore(t), Config{Now: clk.Now})
	mustNil(t, svc.CreateUser(ctx, admin, "ci", "pw", []string{"deployers"}))
	token, info, err := svc.IssueToken(ctx, admin, "ci", "pipeline", time.Hour)
	mustNil(t, err)
	if !strings.HasPrefix(token, tokenPrefix) || len(token) != len(tokenPrefix)+43 {
		t.Fatalf("token %q: want %s and 43 base64url characters (256 bits)", token, tokenPrefix)
	}
	if !info.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("expires %s, want an hour from now", info.Expires)
	}

	t.Run("the token logs in as its user", func(t *testing.T) {
		p, err := svc.Authenticate(ctx, "Bearer "+token)
		mustNil(t, err)
		if p.Name != "ci" || !p.HasRole("deployers") {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("a wrong token is unauthenticated", func(t *testing.T) {
		_, err := svc.Authenticate(ctx, "Bearer "+token[:len(token)-1]+"x")
		wantKind(t, err, verity.Unauthenticated)
	})
	t.Run("a malformed bearer header is unauthenticated", func(t *testing.T) {
		for _, h := range []string{"Bearer", "Bearer a b"} {
			_, err := svc.Authenticate(ctx, h)
			wantKind(t, err, verity.Unauthenticated)
		}
	})
	t.Run("a disabled user's token does not work", func(t *testing.T) {
		yes, no := true, false
		mustNil(t, svc.UpdateUser(ctx, admin, "ci", UserUpdate{Disabled: &yes}))
		_, err := svc.Authenticate(ctx, "Bearer "+token)
		wantKind(t, err, verity.Unauthenticated)
		mustNil(t, svc.UpdateUser(ctx, admin, "ci", UserUpdate{Disabled: &no}))
		_, err = svc.Authenticate(ctx, "Bearer "+token)
		mustNil(t, err)
	})
	t.Run("an expired token does not work", func(t *testing.T) {
		short, _, err := svc.IssueToken(ctx, admin, "ci", "short", time.Minute)
		mustNil(t, err)
		_, err = svc.Authenticate(ctx, "Bearer "+short)
		mustNil(t, err)
		clk.Advance(time.Minute)
		_, err = svc.Authenticate(ctx, "Bearer "+short)
		wantKind(t, err, verity.Unauthenticated)
		if !strings.Contains(err.Error(), "expired") {
			t.Fatalf("error %q: want it to say the token expired", err)
		}
	})
	t.Run("a revoked token does not work", func(t *testing.T) {
		mustNil(t, svc.RevokeToken(ctx, admin, "ci", "pipeline"))
		_, err := svc.Authenticate(ctx, "Bearer "+token)
		wantKind(t, err, verity.Unauthenticated)
		wantKind(t, svc.RevokeToken(ctx, admin, "ci", "pipeline"), verity.NotFound)
	})
	t.Run("a deleted user's tokens go with them", func(t *testing.T) {
		again, _, err := svc.IssueToken(ctx, admin, "ci", "again", 0)
		mustNil(t, err)
		mustNil(t, svc.DeleteUser(ctx, admin, "ci"))
		_, err = svc.Authenticate(ctx, "Bearer "+again)
		wantKind(t, err, verity.Unauthenticated)
		mustNil(t, svc.CreateUser(ctx, admin, "ci", "pw", nil))
		_, err = svc.Authenticate(ctx, "Bearer "+again)
		wantKind(t, err, verity.Unauthenticated)
	})
}

func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	svc := openService(t, store, Config{})
	mustNil(t, svc.CreateUser(ctx, admin, "ci", "pw", nil))
	token, _, err := svc.IssueToken(ctx, admin, "ci", "pipeline", 0)
	mustNil(t, err)
	raw := strings.TrimPrefix(token, tokenPrefix)
	for _, e := range readUsersStream(t, store) {
		if strings.Contains(string(e.Data), raw) {
			t.Fatalf("event %s holds the token in clear: %s", e.Type, e.Data)
		}
	}
}

func readUsersStream(t testing.TB, store verity.Store) []verity.RecordedEvent {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), UsersStream, verity.ReadStreamOptions{})
	mustNil(t, err)
	return evs
}
