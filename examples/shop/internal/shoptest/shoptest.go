// Package shoptest has the helpers the shop services' tests share: a store and consumer
// groups in a temporary directory, and HTTP calls that check the status.
package shoptest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
)

// Quiet is a logger that drops everything.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Open returns an embedded store and a consumer groups manager in t.TempDir(), closed by
// t.Cleanup.
func Open(t testing.TB) (*engine.Engine, *persistent.Manager) {
	t.Helper()
	return OpenLogged(t, Quiet)
}

// OpenLogged is Open with the store and the groups logging to log.
func OpenLogged(t testing.TB, log *slog.Logger) (*engine.Engine, *persistent.Manager) {
	t.Helper()
	store, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	groups, err := persistent.New(store, persistent.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { groups.Close() })
	return store, groups
}

// Call sends method url with body (JSON-encoded unless it is a string) and checks the
// status; it decodes the answer into out when out is not nil, and returns the body.
func Call(t testing.TB, method, url string, body any, want int, out any) string {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return string(b)
}

// Eventually polls cond every few milliseconds until it holds, failing the test after
// limit.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
