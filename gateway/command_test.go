package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/sdk"
)

// These tests call the command route's constructors directly, behind a plain ServeMux,
// so they do not depend on the rest of the gateway.

const cmdTestCategory = "acctcommand"

func cmdOpenStore(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// cmdStartInbox handles the test category's commands by type: Deposit succeeds with the
// amount, Missing is rejected NotFound, Refuse is rejected, Crash always fails, Hang waits.
func cmdStartInbox(t testing.TB, store verity.Store) {
	t.Helper()
	groups, err := persistent.New(store, persistent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { groups.Close() })
	in, err := sdk.StartCommandInbox(context.Background(), groups, store,
		sdk.CommandInboxConfig{Category: cmdTestCategory, MaxAttempts: 2, Backoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		func(ctx context.Context, cmd sdk.Command) (any, error) {
			switch cmd.Type {
			case "Deposit":
				var body struct {
					Account string `json:"account"`
					Amount  int    `json:"amount"`
				}
				if err := json.Unmarshal(cmd.Data, &body); err != nil {
					return nil, sdk.Reject(err)
				}
				return map[string]any{"account": body.Account, "amount": body.Amount}, nil
			case "Missing":
				return nil, verity.Errorf(verity.NotFound, "deposit", "no account %q", "zz")
			case "Refuse":
				return nil, sdk.Reject(errors.New("amount must be positive"))
			case "Crash":
				return nil, errors.New("the ledger is down")
			}
			<-ctx.Done()
			return nil, ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
}

// cmdMux mounts command routes of the test category, one per type, and the status handler.
func cmdMux(t testing.TB, store verity.Store, await time.Duration, types ...string) *http.ServeMux {
	t.Helper()
	mux := http.NewServeMux()
	for _, typ := range types {
		h, err := newCommandHandler(store, "route-"+typ, CommandRoute{Category: cmdTestCategory, Type: typ, Await: await}, "/api/commands")
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("POST /api/accounts/{account}/"+strings.ToLower(typ), h)
	}
	mux.Handle("/api/commands/", newCommandStatusHandler(store, "/api/commands"))
	return mux
}

type cmdResponse struct {
	status int
	header http.Header
	body   string
}

func (r cmdResponse) answer(t testing.TB) commandAnswer {
	t.Helper()
	var a commandAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("answer %d %q: %v", r.status, r.body, err)
	}
	return a
}

func (r cmdResponse) errorKind(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct{ Kind, Message string }
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Message == "" {
		t.Fatalf("error answer %d %q is not {error: {kind, message}}: %v", r.status, r.body, err)
	}
	return e.Error.Kind
}

func cmdDo(h http.Handler, method, target, body string, header ...string) cmdResponse {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return cmdResponse{status: rec.Code, header: rec.Header(), body: string(b)}
}

func TestNewCommandHandlerRefusesBadRoutes(t *testing.T) {
	store := cmdOpenStore(t)
	good := CommandRoute{Category: "ordercommand", Type: "PlaceOrder", Await: 2 * time.Second}
	if _, err := newCommandHandler(store, "orders", good, "/api/commands"); err != nil {
		t.Fatalf("a good route: %v", err)
	}
	for name, c := range map[string]struct {
		store verity.Store
		route string
		cr    CommandRoute
	}{
		"no store":               {nil, "r", good},
		"no route name":          {store, "", good},
		"no category":            {store, "r", CommandRoute{Type: "T"}},
		"a category with a dash": {store, "r", CommandRoute{Category: "order-command", Type: "T"}},
		"a system category":      {store, "r", CommandRoute{Category: "$cmd", Type: "T"}},
		"no type":                {store, "r", CommandRoute{Category: "c"}},
		"a negative await":       {store, "r", CommandRoute{Category: "c", Type: "T", Await: -time.Second}},
		"an await over the cap":  {store, "r", CommandRoute{Category: "c", Type: "T", Await: time.Hour}},
	} {
		if _, err := newCommandHandler(c.store, c.route, c.cr, "/api/commands"); !errors.Is(err, verity.ErrInvalid) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
}

func TestCommandRouteAccepts(t *testing.T) {
	store := cmdOpenStore(t)
	mux := cmdMux(t, store, 0, "Deposit")
	ctx := withCommandUser(context.Background(), "ann")

	t.Run("a command is appended and answered 202 with its status URL", func(t *testing.T) {
		req := httptest.NewRequestWithContext(ctx, "POST", "/api/accounts/a1/deposit", strings.NewReader(`{"amount": 5}`))
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set("X-Correlation-Id", "req-7")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		r := cmdResponse{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
		a := r.answer(t)
		want := "/api/commands/" + cmdTestCategory + "/" + a.ID.String()
		if r.status != http.StatusAccepted || a.State != sdk.CommandPending || a.Category != cmdTestCategory || a.StatusURL != want || r.header.Get("Location") != want {
			t.Fatalf("answer %d %s, Location %q; want 202 pending at %s", r.status, r.body, r.header.Get("Location"), want)
		}
		if !strings.Contains(r.body, `"state":"pending"`) || !strings.Contains(r.body, `"commandId":"`+a.ID.String()) {
			t.Fatalf("answer body %s", r.body)
		}
		evs, err := store.ReadStream(context.Background(), sdk.CommandStream(cmdTestCategory, a.ID), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		md, _ := sdk.ParseMetadata(evs[0].Metadata)
		if len(evs) != 1 || evs[0].ID != a.ID || evs[0].Type != "Deposit" || string(evs[0].Data) != `{"account":"a1","amount":5}` {
			t.Fatalf("command event %+v (data %s)", evs, evs[0].Data)
		}
		if md.CorrelationID != "req-7" || string(md.Extra["traceparent"]) != `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"` || string(md.Extra[sdk.UserIDKey]) != `"ann"` {
			t.Fatalf("command metadata %s", evs[0].Metadata)
		}
	})

	t.Run("the body's own field wins over the path's wildcard, and the correlation id defaults to the command id", func(t *testing.T) {
		r := cmdDo(mux, "POST", "/api/accounts/a1/deposit", `{"account":"other","amount":1}`)
		a := r.answer(t)
		evs, err := store.ReadStream(context.Background(), sdk.CommandStream(cmdTestCategory, a.ID), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(evs[0].Data) != `{"account":"other","amount":1}` || sdk.CorrelationID(evs[0]) != a.ID.String() || r.header.Get("X-Correlation-Id") != a.ID.String() {
			t.Fatalf("command data %s, correlation %q", evs[0].Data, sdk.CorrelationID(evs[0]))
		}
	})

	t.Run("an Idempotency-Key makes a retry the same command", func(t *testing.T) {
		first := cmdDo(mux, "POST", "/api/accounts/a2/deposit", `{"amount":3}`, "Idempotency-Key", "k-1").answer(t)
		retry := cmdDo(mux, "POST", "/api/accounts/a2/deposit", `{ "amount" : 3 }`, "Idempotency-Key", "k-1")
		if retry.status != http.StatusAccepted || retry.answer(t).ID != first.ID || first.ID != commandIDOf("route-Deposit", "k-1") {
			t.Fatalf("retry %d %s; first id %s", retry.status, retry.body, first.ID)
		}
		evs, err := store.ReadStream(context.Background(), sdk.CommandStream(cmdTestCategory, first.ID), verity.ReadStreamOptions{})
		if err != nil || len(evs) != 1 {
			t.Fatalf("the command stream holds %d events (%v), want 1", len(evs), err)
		}
		other := cmdDo(mux, "POST", "/api/accounts/a2/deposit", `{"amount":4}`, "Idempotency-Key", "k-1")
		if other.status != http.StatusConflict || other.errorKind(t) != "conflict" {
			t.Fatalf("the same key with another body: %d %s, want 409", other.status, other.body)
		}
		fresh := cmdDo(mux, "POST", "/api/accounts/a2/deposit", `{"amount":3}`).answer(t)
		if fresh.ID == first.ID {
			t.Fatal("a command without a key reused an id")
		}
	})

	t.Run("bad bodies are refused with a JSON error and change nothing", func(t *testing.T) {
		before, err := store.ReadAll(context.Background(), verity.ReadAllOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, body string
			status     int
		}{
			{"not JSON", `{"amount":`, http.StatusBadRequest},
			{"an array", `[1,2]`, http.StatusBadRequest},
			{"null", `null`, http.StatusBadRequest},
			{"two objects", `{} {}`, http.StatusBadRequest},
			{"over 1 MiB", `{"pad":"` + strings.Repeat("x", MaxCommandBody) + `"}`, http.StatusRequestEntityTooLarge},
		} {
			r := cmdDo(mux, "POST", "/api/accounts/a3/deposit", c.body)
			if r.status != c.status || r.errorKind(t) != "invalid" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %d %.200s, want %d", c.name, r.status, r.body, c.status)
			}
		}
		long := cmdDo(mux, "POST", "/api/accounts/a3/deposit", `{}`, "Idempotency-Key", strings.Repeat("k", 300))
		if long.status != http.StatusBadRequest {
			t.Errorf("a 300-character key: %d %s, want 400", long.status, long.body)
		}
		after, err := store.ReadAll(context.Background(), verity.ReadAllOptions{})
		if err != nil || len(after) != len(before) {
			t.Fatalf("the log went from %d to %d events (%v)", len(before), len(after), err)
		}
	})

	t.Run("an empty body is an empty object", func(t *testing.T) {
		a := cmdDo(mux, "POST", "/api/accounts/a4/deposit", "").answer(t)
		evs, err := store.ReadStream(context.Background(), sdk.CommandStream(cmdTestCategory, a.ID), verity.ReadStreamOptions{})
		if err != nil || string(evs[0].Data) != `{"account":"a4"}` {
			t.Fatalf("command data %v, %v", evs, err)
		}
	})
}

func TestCommandRouteAwaits(t *testing.T) {
	store := cmdOpenStore(t)
	cmdStartInbox(t, store)
	mux := cmdMux(t, store, 5*time.Second, "Deposit", "Missing", "Refuse", "Crash")

	for _, c := range []struct {
		name, typ, body string
		status          int
		state           sdk.CommandState
		check           func(a commandAnswer) bool
	}{
		{"a success is 200 with the result", "Deposit", `{"amount":5}`, http.StatusOK, sdk.CommandSucceeded,
			func(a commandAnswer) bool { return string(a.Result) == `{"account":"a1","amount":5}` }},
		{"a rejection has its kind's status", "Missing", `{}`, http.StatusNotFound, sdk.CommandRejected,
			func(a commandAnswer) bool { return a.Kind == "not_found" && a.Error == `deposit: no account "zz"` }},
		{"a plain rejection is 400", "Refuse", `{}`, http.StatusBadRequest, sdk.CommandRejected,
			func(a commandAnswer) bool { return a.Kind == "invalid" && a.Error == "amount must be positive" }},
		{"a failure is 500 with the error", "Crash", `{}`, http.StatusInternalServerError, sdk.CommandFailed,
			func(a commandAnswer) bool { return a.Error == "the ledger is down" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := cmdDo(mux, "POST", "/api/accounts/a1/"+strings.ToLower(c.typ), c.body)
			a := r.answer(t)
			if r.status != c.status || a.State != c.state || !c.check(a) || a.StatusURL == "" || r.header.Get("X-Command-Id") != a.ID.String() {
				t.Fatalf("answer %d %s, want %d %s", r.status, r.body, c.status, c.state)
			}
		})
	}

	t.Run("a command still pending at the end of the wait is 202", func(t *testing.T) {
		h, err := newCommandHandler(store, "slow", CommandRoute{Category: cmdTestCategory, Type: "Hang", Await: 50 * time.Millisecond}, "/api/commands")
		if err != nil {
			t.Fatal(err)
		}
		r := cmdDo(h, "POST", "/hang", `{}`)
		if a := r.answer(t); r.status != http.StatusAccepted || a.State != sdk.CommandPending || r.header.Get("Location") != a.StatusURL {
			t.Fatalf("answer %d %s, want 202 pending", r.status, r.body)
		}
	})
}

func TestCommandRouteStoreErrors(t *testing.T) {
	store := cmdOpenStore(t)
	mux := cmdMux(t, store, 0, "Deposit")
	store.Close()
	r := cmdDo(mux, "POST", "/api/accounts/a1/deposit", `{}`)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.errorKind(t) != "unavailable" {
		t.Fatalf("a closed store: %d %s (Retry-After %q), want 503", r.status, r.body, r.header.Get("Retry-After"))
	}
}

func TestCommandStatus(t *testing.T) {
	store := cmdOpenStore(t)
	mux := cmdMux(t, store, 0, "Deposit")
	pending := cmdDo(mux, "POST", "/api/accounts/a1/deposit", `{"amount":2}`).answer(t)

	t.Run("a pending command is 200 with state pending", func(t *testing.T) {
		r := cmdDo(mux, "GET", pending.StatusURL, "")
		if a := r.answer(t); r.status != http.StatusOK || a.State != sdk.CommandPending || a.ID != pending.ID || a.Type != "Deposit" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
	})

	t.Run("a wait that ends first is still 200 pending", func(t *testing.T) {
		r := cmdDo(mux, "GET", pending.StatusURL+"?wait=30ms", "")
		if a := r.answer(t); r.status != http.StatusOK || a.State != sdk.CommandPending {
			t.Fatalf("status %d %s", r.status, r.body)
		}
	})

	t.Run("a wait returns once the outcome lands", func(t *testing.T) {
		done := make(chan cmdResponse, 1)
		go func() { done <- cmdDo(mux, "GET", pending.StatusURL+"?wait=10s", "") }()
		cmdStartInbox(t, store)
		r := <-done
		if a := r.answer(t); r.status != http.StatusOK || a.State != sdk.CommandSucceeded || string(a.Result) != `{"account":"a1","amount":2}` {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		again := cmdDo(mux, "GET", pending.StatusURL, "")
		if a := again.answer(t); again.status != http.StatusOK || a.State != sdk.CommandSucceeded {
			t.Fatalf("status after %d %s", again.status, again.body)
		}
	})

	for _, c := range []struct {
		name, method, target string
		status               int
	}{
		{"an unknown command is 404", "GET", "/api/commands/" + cmdTestCategory + "/" + uuid.NewString(), http.StatusNotFound},
		{"an id that is no UUID is 400", "GET", "/api/commands/" + cmdTestCategory + "/42", http.StatusBadRequest},
		{"a bad category is 400", "GET", "/api/commands/$all/" + uuid.NewString(), http.StatusBadRequest},
		{"a bad wait is 400", "GET", pending.StatusURL + "?wait=soon", http.StatusBadRequest},
		{"a path without an id is 404", "GET", "/api/commands/" + cmdTestCategory, http.StatusNotFound},
		{"a deeper path is 404", "GET", pending.StatusURL + "/x", http.StatusNotFound},
		{"a POST is 405", "POST", pending.StatusURL, http.StatusMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := cmdDo(mux, c.method, c.target, "")
			if r.status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.target, r.status, r.body, c.status)
			}
			r.errorKind(t)
		})
	}
}

func TestPatternWildcards(t *testing.T) {
	for pattern, want := range map[string]string{
		"POST /api/orders":                     "[]",
		"POST /api/orders/{id}/items/{item}":   "[id item]",
		"example.com/files/{path...}":          "[path]",
		"GET /exact/{$}":                       "[]",
		"POST /api/accounts/{account}/deposit": "[account]",
	} {
		if got := fmt.Sprint(patternWildcards(pattern)); got != want {
			t.Errorf("%q: %s, want %s", pattern, got, want)
		}
	}
}
