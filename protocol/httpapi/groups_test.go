package httpapi

import (
	"context"
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
	"github.com/verity-dev/verity/storetest"
)

// denyGroups refuses everything, as the server's guarded Groups does for a caller
// without rights.
type denyGroups struct{}

func (denyGroups) CreateGroup(context.Context, verity.GroupSpec) error { return denied("create group") }
func (denyGroups) UpdateGroup(context.Context, verity.GroupSpec) error { return denied("update group") }
func (denyGroups) DeleteGroup(context.Context, string, string) error   { return denied("delete group") }
func (denyGroups) GetGroup(context.Context, string, string) (verity.GroupInfo, error) {
	return verity.GroupInfo{}, denied("get group")
}
func (denyGroups) ListGroups(context.Context, string) ([]verity.GroupInfo, error) {
	return nil, denied("list groups")
}
func (denyGroups) ReplayParked(context.Context, string, string, verity.ReplayParkedOptions) error {
	return denied("replay parked")
}
func (denyGroups) JoinGroup(context.Context, string, string, verity.JoinOptions) (verity.GroupConsumer, error) {
	return nil, denied("join group")
}
func (denyGroups) RestartGroups(context.Context) error { return denied("restart groups") }

// groupEnv is env with a persistent.Manager over the engine as the consumer groups.
type groupEnv struct {
	*env
	groups *persistent.Manager
}

func newGroupEnv(t testing.TB) *groupEnv {
	t.Helper()
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	m := newManager(t, e)
	store := &countingStore{Store: e}
	srv := httptest.NewServer(New(&fakeAccess{store: store, groups: m}, Options{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return &groupEnv{env: &env{t: t, srv: srv, store: store, clock: clock}, groups: m}
}

func TestGroupsAreManagedOverHTTP(t *testing.T) {
	e := newGroupEnv(t)
	e.appendN("order-1", "OrderPlaced", 3)

	t.Run("a group is created with its settings, and once only", func(t *testing.T) {
		e := e.with(t)
		var ref groupRefOut
		e.must(http.StatusCreated, &ref, "PUT", "/subscriptions/order-1/billing",
			`{"strategy":"pinned","messageTimeoutMs":5000,"maxRetryCount":-1,"quarantine":"off","maxConsumers":3}`)
		if ref != (groupRefOut{Stream: "order-1", Group: "billing"}) {
			t.Fatalf("create answered %+v", ref)
		}
		r := e.must(http.StatusConflict, nil, "PUT", "/subscriptions/order-1/billing", "")
		if k := r.errorOf(t).Kind; k != "conflict" {
			t.Fatalf("second create: kind %q, want conflict", k)
		}
	})

	t.Run("a group is described with every setting by name and in milliseconds", func(t *testing.T) {
		e := e.with(t)
		var info groupInfoOut
		e.must(http.StatusOK, &info, "GET", "/subscriptions/order-1/billing", "")
		s := info.Settings
		if info.Stream != "order-1" || info.Group != "billing" || s.Strategy != "Pinned" || s.MessageTimeoutMs != 5000 ||
			s.MaxRetryCount != -1 && s.MaxRetryCount != 0 || s.Quarantine != "off" || s.MaxConsumers != 3 || info.Status == "" {
			t.Fatalf("info %+v does not hold the settings given", info)
		}
		if s.CheckpointAfterMs != verity.DefaultCheckpointAfter.Milliseconds() || s.LiveBufferSize != verity.DefaultLiveBufferSize {
			t.Fatalf("settings %+v do not have the defaults filled in", s)
		}
		if info.Consumers == nil {
			t.Fatalf("consumers is null, want []")
		}
	})

	t.Run("an update replaces the settings", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusOK, nil, "POST", "/subscriptions/order-1/billing", `{"strategy":"DispatchToSingle","checkpointAfterMs":250}`)
		var info groupInfoOut
		e.must(http.StatusOK, &info, "GET", "/subscriptions/order-1/billing", "")
		if info.Settings.Strategy != "DispatchToSingle" || info.Settings.CheckpointAfterMs != 250 || info.Settings.MessageTimeoutMs != verity.DefaultMessageTimeout.Milliseconds() {
			t.Fatalf("after the update the settings are %+v", info.Settings)
		}
		e.must(http.StatusNotFound, nil, "POST", "/subscriptions/order-1/nobody", `{}`)
	})

	t.Run("a timeout of never reads back as -1, not as the 0 of the default", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusOK, nil, "POST", "/subscriptions/order-1/billing", `{"messageTimeoutMs":-1}`)
		var info groupInfoOut
		e.must(http.StatusOK, &info, "GET", "/subscriptions/order-1/billing", "")
		if info.Settings.MessageTimeoutMs != -1 {
			t.Fatalf("messageTimeoutMs %d after setting -1, want -1", info.Settings.MessageTimeoutMs)
		}
	})

	t.Run("a log group takes a filter, given back in its description", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusCreated, nil, "PUT", "/subscriptions/$all/audit", `{"filter":{"categories":["order"],"eventTypeRegexp":"^Order"},"fromEnd":true}`)
		var info groupInfoOut
		e.must(http.StatusOK, &info, "GET", "/subscriptions/$all/audit", "")
		if info.Stream != verity.AllStream || info.Filter == nil || len(info.Filter.Categories) != 1 || info.Filter.EventTypeRegexp != "^Order" || !info.Settings.FromEnd {
			t.Fatalf("log group described as %+v, filter %+v", info, info.Filter)
		}
	})

	t.Run("groups are listed all together, by stream, and on the log", func(t *testing.T) {
		e := e.with(t)
		var list struct{ Groups []groupInfoOut }
		names := func(path string) []string {
			e.must(http.StatusOK, &list, "GET", path, "")
			out := make([]string, len(list.Groups))
			for i, g := range list.Groups {
				out[i] = g.Stream + "/" + g.Group
			}
			return out
		}
		if got := strings.Join(names("/subscriptions"), " "); got != "$all/audit order-1/billing" {
			t.Fatalf("all groups: %s", got)
		}
		if got := strings.Join(names("/subscriptions/order-1"), " "); got != "order-1/billing" {
			t.Fatalf("groups of order-1: %s", got)
		}
		if got := strings.Join(names("/subscriptions/$all"), " "); got != "$all/audit" {
			t.Fatalf("groups of the log: %s", got)
		}
	})

	t.Run("parked events are replayed, all or a limited number", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusOK, nil, "POST", "/subscriptions/order-1/billing/replay-parked", "")
		e.must(http.StatusOK, nil, "POST", "/subscriptions/order-1/billing/replay-parked?limit=5", "")
		e.must(http.StatusNotFound, nil, "POST", "/subscriptions/order-1/nobody/replay-parked", "")
	})

	t.Run("a deleted group is gone", func(t *testing.T) {
		e := e.with(t)
		e.must(http.StatusOK, nil, "DELETE", "/subscriptions/order-1/billing", "")
		e.must(http.StatusNotFound, nil, "GET", "/subscriptions/order-1/billing", "")
		e.must(http.StatusNotFound, nil, "DELETE", "/subscriptions/order-1/billing", "")
	})
}

func TestGroupParkedEventsAreReplayedOverHTTP(t *testing.T) {
	e := newGroupEnv(t)
	e.appendN("order-1", "OrderPlaced", 2)
	e.must(http.StatusCreated, nil, "PUT", "/subscriptions/order-1/billing", "")
	c, err := e.groups.JoinGroup(t.Context(), "order-1", "billing", verity.JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ids []uuid.UUID
	for range 2 {
		msg, err := c.Recv(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.Event.ID)
	}
	if err := c.Nack(t.Context(), verity.NackPark, "poison", ids...); err != nil {
		t.Fatal(err)
	}
	parked := func() int {
		var info groupInfoOut
		e.must(http.StatusOK, &info, "GET", "/subscriptions/order-1/billing", "")
		return info.Parked
	}
	waitFor(t, "two parked events", func() bool { return parked() == 2 })
	e.must(http.StatusOK, nil, "POST", "/subscriptions/order-1/billing/replay-parked?limit=1", "")
	msg, err := c.Recv(t.Context())
	if err != nil || msg.Event.ID != ids[0] {
		t.Fatalf("after replaying one, Recv = %v, %v; want the first parked event %v", msg.Event.ID, err, ids[0])
	}
	waitFor(t, "one parked event left", func() bool { return parked() == 1 })
}

func TestBadGroupRequestsAreInvalid(t *testing.T) {
	e := newGroupEnv(t)
	cases := []struct {
		name, method, path, body, want string
	}{
		{"an unknown strategy", "PUT", "/subscriptions/order-1/g", `{"strategy":"fastest"}`, `"fastest"`},
		{"an unknown quarantine mode", "PUT", "/subscriptions/order-1/g", `{"quarantine":"sometimes"}`, `"sometimes"`},
		{"an unknown field", "PUT", "/subscriptions/order-1/g", `{"strategy":"Pinned","maxInflight":3}`, `maxInflight`},
		{"a timeout past what a duration holds", "PUT", "/subscriptions/order-1/g", `{"messageTimeoutMs":9223372036854775807}`, `messageTimeoutMs`},
		{"a number given as a string", "PUT", "/subscriptions/order-1/g", `{"maxRetryCount":"3"}`, `"maxRetryCount"`},
		{"a bad regular expression in the filter", "PUT", "/subscriptions/$all/g", `{"filter":{"streamRegexp":"("}}`, `stream regular expression`},
		{"a body that is an array", "PUT", "/subscriptions/order-1/g", `[]`, `an array`},
		{"a negative replay limit", "POST", "/subscriptions/order-1/g/replay-parked?limit=-1", ``, `limit "-1"`},
		{"an unknown query parameter", "GET", "/subscriptions/order-1/g?verbose=1", ``, `"verbose"`},
	}
	for _, c := range cases {
		t.Run(c.name+" is answered 400", func(t *testing.T) {
			e := e.with(t)
			r := e.must(http.StatusBadRequest, nil, c.method, c.path, c.body)
			if msg := r.errorOf(t).Message; !strings.Contains(msg, c.want) {
				t.Fatalf("message %q does not mention %s", msg, c.want)
			}
		})
	}
	var list struct{ Groups []groupInfoOut }
	e.must(http.StatusOK, &list, "GET", "/subscriptions", "")
	if len(list.Groups) != 0 {
		t.Fatalf("bad requests created groups: %+v", list.Groups)
	}
}

func TestGroupsRefusals(t *testing.T) {
	t.Run("a caller without rights is answered 403", func(t *testing.T) {
		e := newGroupEnv(t)
		e.must(http.StatusForbidden, nil, "PUT", "/subscriptions/order-1/g", "", "Authorization", nobodyAuth)
		e.must(http.StatusForbidden, nil, "GET", "/subscriptions", "", "Authorization", nobodyAuth)
	})
	t.Run("a server without consumer groups answers 503", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.must(http.StatusServiceUnavailable, nil, "GET", "/subscriptions/order-1/g", "")
		if k := r.errorOf(t).Kind; k != "unavailable" {
			t.Fatalf("kind %q, want unavailable", k)
		}
	})
	t.Run("a wrong method is answered 405 in JSON", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.must(http.StatusMethodNotAllowed, nil, "PATCH", "/subscriptions/order-1/g", "")
		if r.header.Get("Allow") == "" || r.errorOf(t).Kind != "invalid" {
			t.Fatalf("405 without Allow or error JSON: %v %s", r.header, r.body)
		}
	})
}

var _ Access = (*fakeAccess)(nil)

// newManager returns consumer groups over st, closed when the test ends (before st).
func newManager(t testing.TB, st verity.Store) *persistent.Manager {
	t.Helper()
	m, err := persistent.New(st, persistent.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("persistent.New: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}
