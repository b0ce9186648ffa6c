package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
)

// FuzzParseAuthorization feeds arbitrary Authorization headers to the parser and to
// Authenticate: they must never panic, every failure must be Unauthenticated, and a
// successful Basic parse must round-trip to the same user and password.
func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		"", "Basic YWRtaW46Y2hhbmdlaXQ=", "basic YWRtaW46Y2hhbmdlaXQ", "Basic", "Basic !!!",
		"Basic Ym9i", "Bearer vrt_abc", "Bearer a b", "Digest x", "   ", "Basic Og==",
		"Bearer " + strings.Repeat("x", 5000),
	} {
		f.Add(seed)
	}
	store := newStore(f)
	svc := openService(f, store, Config{AdminPassword: "changeit", CredentialCacheTTL: -1})
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseAuthorization(h)
		if err != nil {
			if verity.KindOf(err) != verity.Unauthenticated {
				t.Fatalf("parse %q: %v is %s, want unauthenticated", h, err, verity.KindOf(err))
			}
		} else if c.scheme == "basic" {
			if c.user == "" || strings.Contains(c.user, ":") {
				t.Fatalf("parse %q: user %q", h, c.user)
			}
			back, err := parseAuthorization(basic(c.user, c.password))
			if err != nil || back != c {
				t.Fatalf("parse %q: %+v does not round-trip (%+v, %v)", h, c, back, err)
			}
		}
		p, err := svc.Authenticate(context.Background(), h)
		if err != nil && verity.KindOf(err) != verity.Unauthenticated {
			t.Fatalf("Authenticate(%q): %v is %s, want unauthenticated", h, err, verity.KindOf(err))
		}
		if err == nil && !p.Anonymous() && p.Name != "admin" {
			t.Fatalf("Authenticate(%q) let in %q, who does not exist", h, p.Name)
		}
	})
}
