package registry_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/registry"
)

func TestAnInstanceThatMissesItsTTLIsRemoved(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	lease := register(t, r, "orders", "o1", "127.0.0.1:8081")
	if lease.InstanceID != "o1" || lease.TTL != ttl {
		t.Fatalf("lease = %+v, want o1 with TTL %v", lease, ttl)
	}

	clock.Advance(ttl - time.Nanosecond)
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("just before the TTL, lookup = %v, want [o1]", got)
	}
	clock.Advance(time.Nanosecond)
	if got := lookup(t, r, "orders"); len(got) != 0 {
		t.Fatalf("once the TTL passed, lookup = %v, want none even before a sweep", got)
	}
	n, err := r.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1 removal", n, err)
	}
	want := []logged{{Type: "InstanceRegistered", ID: "o1", Health: "healthy"}, {Type: "InstanceRemoved", ID: "o1", Reason: "expired"}}
	if got := history(t, store); !slices.Equal(got, want) {
		t.Fatalf("history = %+v, want %+v", got, want)
	}
	wantKind(t, r.Heartbeat(ctx, "o1"), verity.NotFound)
	if n, err := r.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want nothing to do", n, err)
	}
}

func TestTheSweeperRemovesExpiredInstancesByItself(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock, func(c *registry.Config) { c.SweepEvery = time.Millisecond })
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	w, err := r.Watch(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	next(t, w) // snapshot
	clock.Advance(ttl)
	c := next(t, w)
	if c.Kind != registry.ChangeRemoved || c.Instance.ID != "o1" || c.Reason != registry.RemovedExpired {
		t.Fatalf("change = %+v, want o1 removed as expired", c)
	}
}

func TestHeartbeatsKeepAnInstanceAliveAndRecordNothing(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	for range 5 {
		clock.Advance(ttl * 6 / 10)
		if err := r.Heartbeat(ctx, "o1"); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if n, err := r.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("sweep = %d, %v; want nothing removed", n, err)
		}
	}
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("lookup = %v, want [o1] after 3 TTLs of heartbeats", got)
	}
	if got := history(t, store); len(got) != 1 {
		t.Fatalf("history = %+v, want the registration alone", got)
	}
	// A heartbeat after the lease ended is too late: the removal is recorded at once.
	clock.Advance(ttl)
	wantKind(t, r.Heartbeat(ctx, "o1"), verity.NotFound)
	if got := history(t, store); len(got) != 2 || got[1].Reason != registry.RemovedExpired {
		t.Fatalf("history = %+v, want the expiry recorded by the late heartbeat", got)
	}
}

func TestDeregisterRemovesAtOnce(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	register(t, r, "orders", "o2", "127.0.0.1:8082")
	if err := r.Deregister(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o2"}) {
		t.Fatalf("lookup = %v, want [o2]", got)
	}
	wantKind(t, r.Deregister(ctx, "o1"), verity.NotFound)
	wantKind(t, r.Heartbeat(ctx, "o1"), verity.NotFound)
	wantKind(t, r.SetHealth(ctx, "o1", registry.Unhealthy, ""), verity.NotFound)
	if got := history(t, store); len(got) != 3 || got[2] != (logged{Type: "InstanceRemoved", ID: "o1", Reason: "deregistered"}) {
		t.Fatalf("history = %+v, want o1's deregistration last", got)
	}
}

func TestUnhealthyInstancesAreListedButNotLookedUp(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	register(t, r, "orders", "o2", "127.0.0.1:8082")
	for range 2 { // the second time changes nothing and records nothing
		if err := r.SetHealth(ctx, "o1", registry.Unhealthy, "database down"); err != nil {
			t.Fatal(err)
		}
	}
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o2"}) {
		t.Fatalf("lookup = %v, want the healthy o2 only", got)
	}
	all, err := r.List(ctx, "orders")
	if err != nil || len(all) != 2 || all[0].Health != registry.Unhealthy || all[0].HealthReason != "database down" {
		t.Fatalf("list = %+v, %v; want o1 unhealthy (database down) and o2", all, err)
	}
	if err := r.SetHealth(ctx, "o1", registry.Healthy, ""); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Fatalf("lookup = %v, want both back", got)
	}
	want := []string{"InstanceRegistered", "InstanceRegistered", "InstanceHealthChanged", "InstanceHealthChanged"}
	var got []string
	for _, l := range history(t, store) {
		got = append(got, l.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
}

func TestRegisteringAgain(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")

	t.Run("with the same details renews the lease and records nothing", func(t *testing.T) {
		clock.Advance(ttl / 2)
		register(t, r, "orders", "o1", "127.0.0.1:8081")
		clock.Advance(ttl * 3 / 4)
		if got := lookup(t, r, "orders"); !slices.Equal(got, []string{"o1"}) {
			t.Fatalf("lookup = %v, want o1 still alive", got)
		}
		if got := history(t, store); len(got) != 1 {
			t.Fatalf("history = %+v, want one registration", got)
		}
	})
	t.Run("with another address records the new details", func(t *testing.T) {
		register(t, r, "orders", "o1", "127.0.0.1:9000")
		all, _ := r.List(ctx, "orders")
		if len(all) != 1 || all[0].Address != "127.0.0.1:9000" {
			t.Fatalf("list = %+v, want o1 at 127.0.0.1:9000", all)
		}
		if got := history(t, store); len(got) != 2 {
			t.Fatalf("history = %+v, want two registrations", got)
		}
	})
	t.Run("under another service is a conflict", func(t *testing.T) {
		_, err := r.Register(ctx, registry.Instance{Service: "payments", ID: "o1", Address: "127.0.0.1:9000"})
		wantKind(t, err, verity.Conflict)
	})
	t.Run("without an id generates one", func(t *testing.T) {
		lease, err := r.Register(ctx, registry.Instance{Service: "payments", Address: "127.0.0.1:9100"})
		if err != nil || lease.InstanceID == "" {
			t.Fatalf("lease = %+v, %v; want a generated id", lease, err)
		}
		if got := lookup(t, r, "payments"); !slices.Equal(got, []string{lease.InstanceID}) {
			t.Fatalf("lookup = %v, want [%s]", got, lease.InstanceID)
		}
	})
}

func TestARestartedRegistryRebuildsItsStateFromTheStream(t *testing.T) {
	store, clock := openStore(t), newClock()
	ctx := context.Background()
	r1 := open(t, store, clock)
	register(t, r1, "orders", "o1", "127.0.0.1:8081")
	register(t, r1, "orders", "o2", "127.0.0.1:8082")
	register(t, r1, "payments", "p1", "http://127.0.0.1:8090/pay")
	if err := r1.SetHealth(ctx, "o2", registry.Unhealthy, "warming up"); err != nil {
		t.Fatal(err)
	}
	if err := r1.Deregister(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	r1.Close()

	// The registry was down longer than a TTL: the instances get a fresh lease all the same.
	clock.Advance(3 * ttl)
	r2 := open(t, store, clock)
	all, err := r2.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Fatalf("after restart, list = %v, want [o1 o2]", got)
	}
	if all[1].Health != registry.Unhealthy || all[1].HealthReason != "warming up" {
		t.Fatalf("o2 = %+v, want it still unhealthy (warming up)", all[1])
	}

	// o1 heartbeats again, o2 does not: o2 is removed one TTL after the restart.
	clock.Advance(ttl / 2)
	if err := r2.Heartbeat(ctx, "o1"); err != nil {
		t.Fatalf("heartbeat after restart: %v", err)
	}
	clock.Advance(ttl / 2)
	if n, err := r2.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want o2 removed", n, err)
	}
	if got := lookup(t, r2, "orders"); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("lookup = %v, want [o1]", got)
	}
	// A third registry folds the removal too.
	r2.Close()
	r3 := open(t, store, clock)
	if got, _ := r3.List(ctx, ""); !slices.Equal(ids(got), []string{"o1"}) {
		t.Fatalf("after a second restart, list = %v, want [o1]", ids(got))
	}
}

func TestAWriteThatRacedAnotherRegistryFoldsItAndRetries(t *testing.T) {
	store, clock := openStore(t), newClock()
	ctx := context.Background()
	r1 := open(t, store, clock)
	r2 := open(t, store, clock)
	register(t, r1, "orders", "o1", "127.0.0.1:8081")
	register(t, r2, "orders", "o2", "127.0.0.1:8082") // r2's expected revision is stale
	if got := lookup(t, r2, "orders"); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Fatalf("r2 lookup = %v, want r1's o1 folded in as well", got)
	}
	register(t, r1, "orders", "o3", "127.0.0.1:8083") // and now r1's is
	if got := lookup(t, r1, "orders"); !slices.Equal(got, []string{"o1", "o2", "o3"}) {
		t.Fatalf("r1 lookup = %v, want r2's o2 folded in as well", got)
	}
	if err := r1.Deregister(ctx, "o2"); err != nil {
		t.Fatalf("r1 deregisters what it learnt on its retry: %v", err)
	}
	if got := history(t, store); len(got) != 4 {
		t.Fatalf("history = %+v, want 3 registrations and a removal, each once", got)
	}
}

func TestTheRegistryRefusesWorkOnceClosed(t *testing.T) {
	r := open(t, openStore(t), newClock())
	ctx := context.Background()
	register(t, r, "orders", "o1", "127.0.0.1:8081")
	w, err := r.Watch(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	next(t, w)
	r.Close()
	_, err = w.Next(ctx)
	wantKind(t, err, verity.Unavailable)
	_, err = r.Register(ctx, registry.Instance{Service: "orders", ID: "o2", Address: "127.0.0.1:8082"})
	wantKind(t, err, verity.Unavailable)
	wantKind(t, r.Heartbeat(ctx, "o1"), verity.Unavailable)
	_, err = r.Lookup(ctx, "orders")
	wantKind(t, err, verity.Unavailable)
	_, err = r.Watch(ctx, "orders")
	wantKind(t, err, verity.Unavailable)
}

func TestInvalidInputIsRefusedAndRecordsNothing(t *testing.T) {
	store, clock := openStore(t), newClock()
	r := open(t, store, clock)
	ctx := context.Background()
	ok := registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"}
	with := func(f func(*registry.Instance)) registry.Instance {
		in := ok
		f(&in)
		return in
	}
	manyKeys := map[string]string{}
	for i := range 65 {
		manyKeys[strings.Repeat("k", i+1)] = "v"
	}
	cases := []struct {
		name string
		in   registry.Instance
		msg  string
	}{
		{"an empty service name", with(func(in *registry.Instance) { in.Service = "" }), "empty"},
		{"an upper-case service name", with(func(in *registry.Instance) { in.Service = "Orders" }), `"Orders"`},
		{"a service name starting with a digit", with(func(in *registry.Instance) { in.Service = "1orders" }), "start with a letter"},
		{"a service name ending with a dash", with(func(in *registry.Instance) { in.Service = "orders-" }), "end with"},
		{"a service name with an underscore", with(func(in *registry.Instance) { in.Service = "or_ders" }), `"or_ders"`},
		{"a service name over 63 bytes", with(func(in *registry.Instance) { in.Service = strings.Repeat("a", 64) }), "over 63"},
		{"an id with a space", with(func(in *registry.Instance) { in.ID = "o 1" }), `"o 1"`},
		{"an id that is a path's dot", with(func(in *registry.Instance) { in.ID = "." }), `"."`},
		{"an id that is a path's dot-dot", with(func(in *registry.Instance) { in.ID = ".." }), `"..": a path segment`},
		{"an id over 128 bytes", with(func(in *registry.Instance) { in.ID = strings.Repeat("i", 129) }), "over 128"},
		{"no address", with(func(in *registry.Instance) { in.Address = "" }), "address is empty"},
		{"an address without a port", with(func(in *registry.Instance) { in.Address = "localhost" }), `"localhost"`},
		{"an address without a host", with(func(in *registry.Instance) { in.Address = ":8080" }), `":8080"`},
		{"an address with port 0", with(func(in *registry.Instance) { in.Address = "localhost:0" }), `port "0"`},
		{"an address with port 70000", with(func(in *registry.Instance) { in.Address = "localhost:70000" }), `port "70000"`},
		{"a URL without a host", with(func(in *registry.Instance) { in.Address = "http:///x" }), `"http:///x"`},
		{"a version with a newline", with(func(in *registry.Instance) { in.Version = "1.0\n" }), "control character"},
		{"65 metadata keys", with(func(in *registry.Instance) { in.Metadata = manyKeys }), "65 keys"},
		{"an empty metadata key", with(func(in *registry.Instance) { in.Metadata = map[string]string{"": "x"} }), "empty key"},
		{"an unknown health", with(func(in *registry.Instance) { in.Health = "sick" }), `"sick"`},
	}
	for _, c := range cases {
		t.Run("registering "+c.name+" is invalid", func(t *testing.T) {
			_, err := r.Register(ctx, c.in)
			wantKind(t, err, verity.Invalid)
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not say %q", err, c.msg)
			}
		})
	}
	t.Run("other calls check their arguments", func(t *testing.T) {
		wantKind(t, r.Heartbeat(ctx, ""), verity.Invalid)
		wantKind(t, r.Deregister(ctx, "a/b"), verity.Invalid)
		wantKind(t, r.SetHealth(ctx, "o1", "sick", ""), verity.Invalid)
		wantKind(t, r.SetHealth(ctx, "o1", registry.Healthy, "bad\x00reason"), verity.Invalid)
		_, err := r.Lookup(ctx, "")
		wantKind(t, err, verity.Invalid)
		_, err = r.Watch(ctx, "BAD")
		wantKind(t, err, verity.Invalid)
	})
	if got := history(t, store); len(got) != 0 {
		t.Fatalf("history = %+v, want nothing recorded", got)
	}
	t.Run("a bad config is invalid", func(t *testing.T) {
		for _, cfg := range []registry.Config{{TTL: -1}, {TTL: time.Microsecond}, {SweepEvery: -1}, {WatchBuffer: -1}} {
			_, err := registry.New(store, cfg)
			wantKind(t, err, verity.Invalid)
		}
	})
}

func TestARegistryStartsFromItsLastSnapshot(t *testing.T) {
	store, clock := openStore(t), newClock()
	ctx := context.Background()
	every := func(c *registry.Config) { c.SnapshotEvery = 10 }
	r1 := open(t, store, clock, every)
	for i := range 23 {
		register(t, r1, fmt.Sprintf("svc%d", i%3), fmt.Sprintf("i%02d", i), fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	if err := r1.SetHealth(ctx, "i04", registry.Unhealthy, "disk full"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"i01", "i07", "i20"} {
		if err := r1.Deregister(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	want, err := r1.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	r1.Close()

	// A snapshot after every 10 changes: 27 changes, so two, at revisions 10 and 21.
	var snaps []int
	for i, e := range history(t, store) {
		if e.Type == registry.EventRegistrySnapshot {
			snaps = append(snaps, i)
		}
	}
	if !slices.Equal(snaps, []int{10, 21}) {
		t.Fatalf("snapshots at revisions %v, want [10 21]", snaps)
	}

	// With everything before the last snapshot let go, a new registry finds the same
	// instances, health and registration times: it folded from the snapshot on.
	truncateBefore(t, store, uint64(snaps[len(snaps)-1]))
	r2 := open(t, store, clock, every)
	got, err := r2.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from the snapshot:\n got %+v\nwant %+v", got, want)
	}
	// And it goes on from there: its next change and snapshot follow the stream.
	register(t, r2, "svc9", "j1", "127.0.0.1:9999")
	r2.Close()
	r3 := open(t, store, clock, every)
	if got, _ := r3.List(ctx, "svc9"); !slices.Equal(ids(got), []string{"j1"}) {
		t.Fatalf("a third registry lists %v for svc9, want [j1]", ids(got))
	}
	if n, _ := r3.List(ctx, ""); len(n) != len(want)+1 {
		t.Fatalf("a third registry lists %d instances, want %d", len(n), len(want)+1)
	}
}

// failingSnapshots is a store whose appends of RegistrySnapshot events fail, as they would
// past the store's MaxEventSize.
type failingSnapshots struct {
	verity.Store
	attempts int
}

func (f *failingSnapshots) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	if len(events) == 1 && events[0].Type == registry.EventRegistrySnapshot {
		f.attempts++
		return verity.AppendResult{}, verity.Errorf(verity.Invalid, "append", "event too large")
	}
	return f.Store.Append(ctx, stream, expected, events...)
}

func TestASnapshotThatCannotBeWrittenIsTriedAgainOnlyAnIntervalLater(t *testing.T) {
	store := &failingSnapshots{Store: openStore(t)}
	r := open(t, store, newClock(), func(c *registry.Config) { c.SnapshotEvery = 5 })
	for i := range 20 {
		register(t, r, "svc", fmt.Sprintf("i%02d", i), fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	// 20 events, revisions 0 to 19: tried at 4, 9, 14 and 19, not after every commit.
	if store.attempts != 4 {
		t.Fatalf("%d snapshot attempts, want 4", store.attempts)
	}
	if got := history(t, store); len(got) != 20 {
		t.Fatalf("the stream holds %d events, want the 20 registrations", len(got))
	}
}

func TestAnUnreadableSnapshotIsPassedOverForAnEarlierOne(t *testing.T) {
	store, clock := openStore(t), newClock()
	ctx := context.Background()
	every := func(c *registry.Config) { c.SnapshotEvery = 4 }
	r1 := open(t, store, clock, every)
	for i := range 5 {
		register(t, r1, "svc", fmt.Sprintf("i%d", i), fmt.Sprintf("127.0.0.1:%d", 9000+i))
	}
	r1.Close()
	// Revisions 0-3 registrations, 4 a snapshot, 5 a registration; then a broken snapshot.
	if _, err := store.Append(ctx, registry.DefaultStream, verity.Exact(5), verity.EventData{
		ID: uuid.New(), Type: registry.EventRegistrySnapshot, ContentType: verity.ContentTypeJSON, Data: []byte(`{"instances": 7}`),
	}); err != nil {
		t.Fatal(err)
	}
	truncateBefore(t, store, 4)
	r2 := open(t, store, clock, every)
	got, err := r2.List(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"i0", "i1", "i2", "i3", "i4"}; !slices.Equal(ids(got), want) {
		t.Fatalf("from the readable snapshot: %v, want %v", ids(got), want)
	}
}

// truncateBefore lets the registry stream's events before revision rev go.
func truncateBefore(t *testing.T, store verity.Store, rev uint64) {
	t.Helper()
	if _, err := store.SetStreamMetadata(context.Background(), registry.DefaultStream, verity.Any(), verity.StreamMetadata{TruncateBefore: &rev}); err != nil {
		t.Fatal(err)
	}
}
