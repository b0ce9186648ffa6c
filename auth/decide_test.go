package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/verity-dev/verity"
)

var ordersRules = []Rule{
	{Roles: []string{"orders-service"}, Categories: []string{"order"}, Actions: []Action{Read, Write}},
	{Roles: []string{"orders-service"}, Categories: []string{"customer"}, Actions: []Action{Read}},
}

// decisionFixture is a store with streams of every kind, and a Service with the orders rules.
func decisionFixture(t *testing.T, cfg Config) (verity.Store, *Service) {
	t.Helper()
	ctx := context.Background()
	store := newStore(t)
	for _, s := range []string{"order-7", "order-9", "customer-1", "invoice-1", "secret-1", "public-1", "$system-x"} {
		if _, err := store.Append(ctx, s, verity.Any(), event("Happened")); err != nil {
			t.Fatalf("append %s: %v", s, err)
		}
	}
	acl := map[string]*verity.StreamACL{
		"secret-1": {Read: []string{"carol"}, Write: []string{"auditors"}},
		"public-1": {Read: []string{RoleAll}},
		"order-9":  {Write: []string{"admin"}},
	}
	for s, a := range acl {
		if _, err := store.SetStreamMetadata(ctx, s, verity.Any(), verity.StreamMetadata{ACL: a}); err != nil {
			t.Fatalf("set metadata %s: %v", s, err)
		}
	}
	if cfg.Rules == nil {
		cfg.Rules = ordersRules
	}
	cfg.AdminPassword = "changeit"
	return store, openService(t, store, cfg)
}

func TestCheckDecisionMatrix(t *testing.T) {
	_, svc := decisionFixture(t, Config{})
	const (
		ok      = verity.ErrorKind(255)
		denied  = verity.PermissionDenied
		unauthn = verity.Unauthenticated
	)
	cases := []struct {
		p      Principal
		a      Action
		stream string
		want   verity.ErrorKind
	}{
		{admin, Write, "$system-x", ok},
		{admin, Read, UsersStream, ok},
		{admin, MetadataWrite, "secret-1", ok},
		{admin, Read, "secret-1", ok},
		{ops, Read, "$system-x", ok},
		{ops, MetadataRead, "$system-x", ok},
		{ops, Write, "$system-x", denied},
		{ops, Read, UsersStream, denied},
		{ops, Read, "$$$users", denied},
		{ops, Read, "order-7", ok},
		{bob, Read, "order-7", ok},
		{bob, Write, "order-7", ok},
		{bob, Delete, "order-7", ok},
		{bob, Read, "$system-x", denied},
		{bob, Write, "$system-x", denied},
		{bob, Read, "$$$system-x", denied},
		{bob, Read, "$$order-7", ok},
		{bob, Write, "$$order-7", ok},
		{bob, Read, "secret-1", denied},
		{bob, Write, "secret-1", denied},
		{bob, Read, "$$secret-1", ok},
		{carol, Read, "secret-1", ok},
		{carol, Write, "secret-1", ok},
		{carol, Read, UsersStream, denied},
		{anon, Read, "order-7", unauthn},
		{anon, Read, "public-1", ok},
		{anon, Write, "public-1", unauthn},
		{anon, Read, "$system-x", unauthn},
		{orders, Read, "order-7", ok},
		{orders, Write, "order-7", ok},
		{orders, Read, "customer-1", ok},
		{orders, Write, "customer-1", denied},
		{orders, Read, "invoice-1", denied},
		{orders, Delete, "order-7", denied},
		{orders, Write, "order-9", denied},
		{orders, Read, "public-1", denied},
		{orders, Read, "$$order-7", denied},
		{orders, Read, "$system-x", denied},
	}
	for _, c := range cases {
		who := c.p.Name
		if who == "" {
			who = "anonymous"
		}
		verdict := "may"
		if c.want != ok {
			verdict = "may not"
		}
		t.Run(fmt.Sprintf("%s %s %s %s", who, verdict, c.a, c.stream), func(t *testing.T) {
			err := svc.Check(context.Background(), "test", c.p, c.a, c.stream)
			if c.want == ok {
				mustNil(t, err)
				return
			}
			wantKind(t, err, c.want)
			var e *verity.Error
			if !errorsAs(err, &e) || e.Stream != c.stream || e.Op != "test" {
				t.Fatalf("error %#v: want Op \"test\" and Stream %q", err, c.stream)
			}
		})
	}
}

func errorsAs(err error, e **verity.Error) bool {
	v, ok := err.(*verity.Error)
	*e = v
	return ok
}

func TestDenialMessageNamesUserActionAndStream(t *testing.T) {
	_, svc := decisionFixture(t, Config{})
	err := svc.Check(context.Background(), "append", bob, Write, "secret-1")
	if want := `user "bob" may not write stream "secret-1"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v: want it to say %s", err, want)
	}
	err = svc.Check(context.Background(), "read stream", anon, Read, "order-7")
	if want := `authentication required to read stream "order-7"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v: want it to say %s", err, want)
	}
	err = svc.Check(context.Background(), "read stream", orders, Read, "$$order-7")
	if want := `may not read the metadata of stream "order-7"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v: want it to say %s", err, want)
	}
}

func TestEmptyDefaultAccessLeavesOnlyACLsAndRules(t *testing.T) {
	_, svc := decisionFixture(t, Config{DefaultAccess: []Action{}})
	ctx := context.Background()
	wantKind(t, svc.Check(ctx, "test", bob, Read, "order-7"), verity.PermissionDenied)
	mustNil(t, svc.Check(ctx, "test", carol, Read, "secret-1"))
	mustNil(t, svc.Check(ctx, "test", orders, Write, "order-7"))
}

func TestDefaultAccessReadOnly(t *testing.T) {
	_, svc := decisionFixture(t, Config{DefaultAccess: []Action{Read}})
	ctx := context.Background()
	mustNil(t, svc.Check(ctx, "test", bob, Read, "order-7"))
	wantKind(t, svc.Check(ctx, "test", bob, Write, "order-7"), verity.PermissionDenied)
}

func TestCheckAllNeedsAFilterTheCallerMayRead(t *testing.T) {
	_, svc := decisionFixture(t, Config{})
	const ok = verity.ErrorKind(255)
	cases := []struct {
		name string
		p    Principal
		f    verity.Filter
		want verity.ErrorKind
	}{
		{"an admin may read the whole log", admin, verity.Filter{}, ok},
		{"a user may not read the whole log", bob, verity.Filter{}, verity.PermissionDenied},
		{"ops may not read the whole log", ops, verity.Filter{}, verity.PermissionDenied},
		{"a user may read a category", bob, verity.Filter{Categories: []string{"order"}}, ok},
		{"a user may read a stream prefix", bob, verity.Filter{StreamPrefixes: []string{"order-"}}, ok},
		{"a user may not read a system category", bob, verity.Filter{Categories: []string{"$$order"}}, verity.PermissionDenied},
		{"a user may not read an empty prefix", bob, verity.Filter{StreamPrefixes: []string{""}}, verity.PermissionDenied},
		{"a user may not read a system prefix", bob, verity.Filter{StreamPrefixes: []string{"$"}}, verity.PermissionDenied},
		{"an event type filter alone does not restrict streams", bob, verity.Filter{EventTypes: []string{"Happened"}}, verity.PermissionDenied},
		{"a regexp alone does not count", bob, verity.Filter{StreamRegexp: "^order-"}, verity.PermissionDenied},
		{"a service may read its categories", orders, verity.Filter{Categories: []string{"order", "customer"}}, ok},
		{"a service may not read another category", orders, verity.Filter{Categories: []string{"order", "invoice"}}, verity.PermissionDenied},
		{"a service may read a prefix inside its category", orders, verity.Filter{StreamPrefixes: []string{"order-1"}}, ok},
		{"a service may not read a prefix wider than its category", orders, verity.Filter{StreamPrefixes: []string{"ord"}}, verity.PermissionDenied},
		{"a rejected category is made good by allowed prefixes", orders, verity.Filter{Categories: []string{"invoice"}, StreamPrefixes: []string{"order-"}}, ok},
		{"an anonymous caller may not read the log", anon, verity.Filter{Categories: []string{"public"}}, verity.Unauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := svc.CheckAll("read all", c.p, c.f)
			if c.want == ok {
				mustNil(t, err)
				return
			}
			wantKind(t, err, c.want)
			if e, _ := err.(*verity.Error); e == nil || e.Stream != verity.AllStream {
				t.Fatalf("error %v: want Stream $all", err)
			}
		})
	}
}

func TestGuardedStoreOperations(t *testing.T) {
	ctx := context.Background()
	store, svc := decisionFixture(t, Config{})
	const ok = verity.ErrorKind(255)
	type call func(verity.Store) error
	appendTo := func(s string) call {
		return func(st verity.Store) error { _, err := st.Append(ctx, s, verity.Any(), event("X")); return err }
	}
	read := func(s string) call {
		return func(st verity.Store) error { _, err := st.ReadStream(ctx, s, verity.ReadStreamOptions{}); return err }
	}
	getMeta := func(s string) call {
		return func(st verity.Store) error { _, err := st.GetStreamMetadata(ctx, s); return err }
	}
	setMeta := func(s string) call {
		return func(st verity.Store) error {
			_, err := st.SetStreamMetadata(ctx, s, verity.Any(), verity.StreamMetadata{MaxCount: 5})
			return err
		}
	}
	del := func(s string) call {
		return func(st verity.Store) error { _, err := st.DeleteStream(ctx, s, verity.Any()); return err }
	}
	tomb := func(s string) call {
		return func(st verity.Store) error { _, err := st.TombstoneStream(ctx, s, verity.Any()); return err }
	}
	sub := func(s string) call {
		return func(st verity.Store) error {
			sb, err := st.Subscribe(ctx, verity.SubscribeOptions{Stream: s})
			if err == nil {
				_ = sb.Close()
			}
			return err
		}
	}
	cases := []struct {
		name string
		p    Principal
		c    call
		want verity.ErrorKind
	}{
		{"bob appends to order-7", bob, appendTo("order-7"), ok},
		{"bob may not append to secret-1", bob, appendTo("secret-1"), verity.PermissionDenied},
		{"bob may not append to a system stream", bob, appendTo("$system-x"), verity.PermissionDenied},
		{"bob may not append to $users", bob, appendTo(UsersStream), verity.PermissionDenied},
		{"bob reads order-7", bob, read("order-7"), ok},
		{"bob may not read secret-1", bob, read("secret-1"), verity.PermissionDenied},
		{"anonymous may not read order-7", anon, read("order-7"), verity.Unauthenticated},
		{"anonymous reads public-1", anon, read("public-1"), ok},
		{"bob reads secret-1's metadata", bob, getMeta("secret-1"), ok},
		{"orders may not read order-7's metadata", orders, getMeta("order-7"), verity.PermissionDenied},
		{"orders may not set order-7's metadata", orders, setMeta("order-7"), verity.PermissionDenied},
		{"bob sets invoice-1's metadata", bob, setMeta("invoice-1"), ok},
		{"orders may not delete order-7", orders, del("order-7"), verity.PermissionDenied},
		{"orders may not tombstone order-7", orders, tomb("order-7"), verity.PermissionDenied},
		{"bob deletes customer-1", bob, del("customer-1"), ok},
		{"bob deletes secret-1, whose $acl says nothing of deletes", bob, del("secret-1"), ok},
		{"ops may not tombstone a system stream", ops, tomb("$system-x"), verity.PermissionDenied},
		{"orders subscribes to order-7", orders, sub("order-7"), ok},
		{"orders may not subscribe to invoice-1", orders, sub("invoice-1"), verity.PermissionDenied},
		{"admin tombstones invoice-1", admin, tomb("invoice-1"), ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := lastPosition(t, store)
			err := c.c(svc.Store(c.p))
			if c.want == ok {
				mustNil(t, err)
				return
			}
			wantKind(t, err, c.want)
			if after := lastPosition(t, store); after != before {
				t.Fatalf("a refused call changed the log: last position %d, then %d", before, after)
			}
		})
	}
}

// lastPosition is the position of the log's last event.
func lastPosition(t testing.TB, store verity.Store) uint64 {
	t.Helper()
	evs, err := store.ReadAll(context.Background(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	mustNil(t, err)
	if len(evs) == 0 {
		return 0
	}
	return evs[0].Position
}

func TestAppendMultiPartlyDeniedWritesNothing(t *testing.T) {
	ctx := context.Background()
	store, svc := decisionFixture(t, Config{})
	before := lastPosition(t, store)
	_, err := svc.Store(orders).AppendMulti(ctx,
		verity.StreamAppend{Stream: "order-7", Events: []verity.EventData{event("OrderPlaced")}},
		verity.StreamAppend{Stream: "customer-1", Events: []verity.EventData{event("CustomerChanged")}},
	)
	wantKind(t, err, verity.PermissionDenied)
	if e, _ := err.(*verity.Error); e == nil || e.Stream != "customer-1" {
		t.Fatalf("error %v: want it to name customer-1", err)
	}
	if after := lastPosition(t, store); after != before {
		t.Fatalf("refused multi-append wrote: last position %d, then %d", before, after)
	}
	evs, err := store.ReadStream(ctx, "order-7", verity.ReadStreamOptions{})
	mustNil(t, err)
	if len(evs) != 1 {
		t.Fatalf("order-7 has %d events, want the 1 it had", len(evs))
	}
	res, err := svc.Store(orders).AppendMulti(ctx,
		verity.StreamAppend{Stream: "order-7", Events: []verity.EventData{event("OrderPlaced")}},
		verity.StreamAppend{Stream: "order-8", Events: []verity.EventData{event("OrderPlaced")}},
	)
	mustNil(t, err)
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
}

func TestDeniedCallsAreCounted(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	_, svc := decisionFixture(t, Config{OnDenied: func(p Principal, a Action, stream string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s %s %s", p.Name, a, stream))
	}})
	ctx := context.Background()
	_, _ = svc.Store(bob).Append(ctx, "secret-1", verity.Any(), event("X"))
	_, _ = svc.Store(orders).ReadAll(ctx, verity.ReadAllOptions{})
	_, _ = svc.Store(bob).ReadStream(ctx, "order-7", verity.ReadStreamOptions{}) // allowed
	if got := svc.Denied(); got != 2 {
		t.Fatalf("Denied() = %d, want 2", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"bob write secret-1", "orders read $all"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("OnDenied saw %q, want %q", seen, want)
	}
}

func TestChangedACLAppliesToTheNextCall(t *testing.T) {
	ctx := context.Background()
	_, svc := decisionFixture(t, Config{})
	bobs := svc.Store(bob)
	if _, err := bobs.ReadStream(ctx, "order-7", verity.ReadStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Store(admin).SetStreamMetadata(ctx, "order-7", verity.Any(),
		verity.StreamMetadata{ACL: &verity.StreamACL{Read: []string{"carol"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := bobs.ReadStream(ctx, "order-7", verity.ReadStreamOptions{})
	wantKind(t, err, verity.PermissionDenied)
}

func TestReadAllReturnsOnlyReadableStreams(t *testing.T) {
	ctx := context.Background()
	store, svc := decisionFixture(t, Config{})
	// Many unreadable events first, so that a page of them would look like the end.
	for range 30 {
		_, err := store.Append(ctx, "secret-1", verity.Any(), event("Hidden"))
		mustNil(t, err)
	}
	_, err := store.Append(ctx, "order-8", verity.Any(), event("Visible"))
	mustNil(t, err)

	f := verity.Filter{Categories: []string{"secret", "order"}}
	for _, dir := range []verity.Direction{verity.Forwards, verity.Backwards} {
		t.Run("bob reads "+dir.String()+" without secret-1", func(t *testing.T) {
			opts := verity.ReadAllOptions{Direction: dir, Filter: f, Limit: 2}
			if dir == verity.Backwards {
				opts.FromEnd = true
			}
			var got []string
			for page := 0; ; page++ {
				if page > 50 {
					t.Fatal("read did not end")
				}
				evs, err := svc.Store(bob).ReadAll(ctx, opts)
				mustNil(t, err)
				if len(evs) == 0 {
					break
				}
				if len(evs) > 2 {
					t.Fatalf("got %d events, over the limit of 2", len(evs))
				}
				for _, e := range evs {
					got = append(got, e.Stream)
				}
				last := evs[len(evs)-1].Position
				opts.FromEnd = false
				if dir == verity.Forwards {
					opts.From = last + 1
				} else {
					if last == 1 {
						break
					}
					opts.From = last - 1
				}
			}
			for _, s := range got {
				if s == "secret-1" {
					t.Fatalf("bob read an event of secret-1: %v", got)
				}
			}
			if !containsAll(got, "order-7", "order-8", "order-9") {
				t.Fatalf("bob read %v, want the order streams", got)
			}
		})
	}
	t.Run("carol reads secret-1 too", func(t *testing.T) {
		evs, err := svc.Store(carol).ReadAll(ctx, verity.ReadAllOptions{Filter: f})
		mustNil(t, err)
		var streams []string
		for _, e := range evs {
			streams = append(streams, e.Stream)
		}
		if !containsAll(streams, "secret-1", "order-7") {
			t.Fatalf("carol read %v", streams)
		}
	})
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, x := range list {
			found = found || x == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestLogSubscriptionTurnsUnreadableEventsIntoCheckpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, svc := decisionFixture(t, Config{})
	sub, err := svc.Store(bob).Subscribe(ctx, verity.SubscribeOptions{Filter: verity.Filter{Categories: []string{"secret", "order"}}})
	mustNil(t, err)
	defer sub.Close()
	hidden, err := store.Append(ctx, "secret-1", verity.Any(), event("Hidden"))
	mustNil(t, err)
	live, err := store.Append(ctx, "order-8", verity.Any(), event("Visible"))
	mustNil(t, err)
	sawCheckpoint := false
	for {
		m, err := sub.Recv(ctx)
		mustNil(t, err)
		if m.Kind == verity.MessageCheckpoint && m.Position == hidden.Position {
			sawCheckpoint = true
		}
		if m.Kind == verity.MessageEvent {
			if m.Event.Stream == "secret-1" {
				t.Fatal("bob was sent an event of secret-1")
			}
			if m.Event.Position == live.Position {
				break
			}
		}
	}
	if !sawCheckpoint {
		t.Fatalf("no checkpoint at the hidden event's position %d", hidden.Position)
	}
}

func TestGuardedStoreCloseLeavesTheStoreOpen(t *testing.T) {
	store, svc := decisionFixture(t, Config{})
	mustNil(t, svc.Store(admin).Close())
	_, err := store.ReadStream(context.Background(), "order-7", verity.ReadStreamOptions{})
	mustNil(t, err)
}

func TestInsecureMakesEveryoneAdmin(t *testing.T) {
	ctx := context.Background()
	_, svc := decisionFixture(t, Config{Insecure: true})
	for _, h := range []string{"", basic("nobody", "wrong"), "Bearer nonsense", "Garbage"} {
		p, err := svc.Authenticate(ctx, h)
		mustNil(t, err)
		if !p.IsAdmin() || p.Name != AdminUser {
			t.Fatalf("Authenticate(%q) = %+v, want the admin", h, p)
		}
	}
	_, err := svc.Store(anon).Append(ctx, "$system-x", verity.Any(), event("X"))
	mustNil(t, err)
}
