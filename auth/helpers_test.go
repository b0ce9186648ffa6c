package auth

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// newStore opens an embedded engine in a temporary directory, closed when the test ends.
func newStore(t testing.TB) verity.Store {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clock is a settable clock for token expiry and the credential cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openService opens a Service over store with test defaults (cheap bcrypt, quiet logs,
// admin password "changeit"), closed when the test ends.
func openService(t testing.TB, store verity.Store, cfg Config) *Service {
	t.Helper()
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.MinCost
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := Open(context.Background(), store, cfg)
	if err != nil {
		t.Fatalf("auth.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var (
	admin = Principal{Name: "admin", Roles: []string{RoleAdmins}}
	ops   = Principal{Name: "olga", Roles: []string{RoleOps}}
	bob   = Principal{Name: "bob"}
	carol = Principal{Name: "carol", Roles: []string{"auditors"}}
	// orders is limited by rules: write category order, read categories order and customer.
	orders = Principal{Name: "orders", Roles: []string{"orders-service"}}
	anon   = Principal{}
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func wantKind(t testing.TB, err error, kind verity.ErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	if got := verity.KindOf(err); got != kind {
		t.Fatalf("got %s error %v, want %s", got, err, kind)
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func event(typ string) verity.EventData {
	return verity.EventData{Type: typ, Data: []byte(`{"n":1}`)}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
