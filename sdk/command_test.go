package sdk_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
)

func TestCommandHandlerAppendsDecidedEvents(t *testing.T) {
	store := openEngine(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	h := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})

	res := mustHandle(t, h, "account-1", Open{Owner: "ann"})
	if res.Stream != (verity.StreamState{Exists: true, Revision: 0}) || res.Attempts != 1 || res.Duplicate || res.Position == 0 {
		t.Fatalf("open: got %+v", res)
	}
	res = mustHandle(t, h, "account-1", Deposit{Amount: 10}, sdk.WithMetadata(sdk.Metadata{CorrelationID: "req-1"}))
	if res.State != (Account{Open: true, Owner: "ann", Balance: 10}) || res.Stream.Revision != 1 || len(res.Events) != 1 || res.Events[0] != (Deposited{Amount: 10}) {
		t.Fatalf("deposit: got %+v", res)
	}
	recs := readAll(t, store, "account-1")
	if len(recs) != 2 || recs[0].Type != "AccountOpened" || recs[1].Type != "MoneyDeposited" || sdk.CorrelationID(recs[1]) != "req-1" {
		t.Fatalf("stream holds %+v", recs)
	}

	t.Run("a domain error is returned as-is and appends nothing", func(t *testing.T) {
		res, err := h.Handle(context.Background(), "account-1", Withdraw{Amount: 11})
		if err != ErrInsufficientFunds {
			t.Fatalf("got %v, want ErrInsufficientFunds itself", err)
		}
		if res.Attempts != 1 {
			t.Fatalf("a domain error was retried: %d attempts", res.Attempts)
		}
		if n := len(readAll(t, store, "account-1")); n != 2 {
			t.Fatalf("stream has %d events, want 2", n)
		}
	})
	t.Run("a domain error of kind Conflict is not retried either", func(t *testing.T) {
		refusing := accountDecider
		domainConflict := verity.Errorf(verity.Conflict, "withdraw", "account is frozen")
		refusing.Decide = func(Account, any) ([]AccountEvent, error) { return nil, domainConflict }
		hr, err := sdk.NewCommandHandler(store, reg, refusing, sdk.CommandHandlerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := hr.Handle(context.Background(), "account-1", Withdraw{Amount: 1})
		if err != error(domainConflict) || res.Attempts != 1 {
			t.Fatalf("got %v after %d attempts, want the decider's error after 1", err, res.Attempts)
		}
	})
	t.Run("a command deciding nothing appends nothing", func(t *testing.T) {
		quiet := accountDecider
		quiet.Decide = func(Account, any) ([]AccountEvent, error) { return nil, nil }
		hq, err := sdk.NewCommandHandler(store, reg, quiet, sdk.CommandHandlerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := hq.Handle(context.Background(), "account-1", Deposit{Amount: 1})
		if err != nil || len(res.Events) != 0 || res.Stream.Revision != 1 || res.State.Balance != 10 {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("State loads without deciding", func(t *testing.T) {
		s, st, err := h.State(context.Background(), "account-1")
		if err != nil || s.Balance != 10 || st != (verity.StreamState{Exists: true, Revision: 1}) {
			t.Fatalf("got %+v %+v %v", s, st, err)
		}
		s, st, err = h.State(context.Background(), "account-none")
		if err != nil || s.Open || st.Exists {
			t.Fatalf("new stream: got %+v %+v %v", s, st, err)
		}
	})
}

func TestCommandHandlerRefusesInvalidInput(t *testing.T) {
	store := openEngine(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	h := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	noDecide := accountDecider
	noDecide.Decide = nil
	_, errNoDecide := sdk.NewCommandHandler(store, reg, noDecide, sdk.CommandHandlerConfig{})
	_, errNoStore := sdk.NewCommandHandler[Account, any, AccountEvent](nil, reg, accountDecider, sdk.CommandHandlerConfig{})
	_, errNoReg := sdk.NewCommandHandler(store, nil, accountDecider, sdk.CommandHandlerConfig{})
	_, errConfig := sdk.NewCommandHandler(store, reg, accountDecider, sdk.CommandHandlerConfig{MaxAttempts: -1})
	_, errEmpty := h.Handle(context.Background(), "", Open{})
	_, errSystem := h.Handle(context.Background(), "$accounts", Open{})
	// An event type the registry does not know, decided by a sloppy decider.
	sloppy := accountDecider
	sloppy.Decide = func(Account, any) ([]AccountEvent, error) { return []AccountEvent{unregistered{}}, nil }
	hs, err := sdk.NewCommandHandler(store, reg, sloppy, sdk.CommandHandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, errUnregistered := hs.Handle(context.Background(), "account-1", Open{})
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"a Decider without Decide", errNoDecide, "Decide is nil"},
		{"a nil store", errNoStore, "store is nil"},
		{"a nil registry", errNoReg, "registry is nil"},
		{"a bad config", errConfig, "MaxAttempts"},
		{"an empty stream name", errEmpty, "stream name is empty"},
		{"a system stream", errSystem, "system stream"},
		{"an unregistered event type", errUnregistered, "not registered"},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, verity.ErrInvalid) || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("got %v, want Invalid mentioning %q", tt.err, tt.want)
			}
		})
	}
	if _, err := store.ReadStream(context.Background(), "account-1", verity.ReadStreamOptions{}); !errors.Is(err, verity.ErrNotFound) {
		t.Fatalf("a refused command wrote something: %v", err)
	}
}

type unregistered struct{}

func (unregistered) accountEvent() {}

// interfering wraps the account decider so that its first `times` decisions are each
// raced by a concurrent deposit of 1 on the same stream, written straight to the store
// between the handler's read and its append.
func interfering(t testing.TB, store verity.Store, reg *sdk.Registry, stream string, times int) sdk.Decider[Account, any, AccountEvent] {
	var n atomic.Int32
	d := accountDecider
	d.Decide = func(s Account, cmd any) ([]AccountEvent, error) {
		if int(n.Add(1)) <= times {
			ed, err := reg.Encode(Deposited{Amount: 1}, sdk.Metadata{})
			if err != nil {
				t.Error(err)
			}
			if _, err := store.Append(context.Background(), stream, verity.Any(), ed); err != nil {
				t.Error(err)
			}
		}
		return accountDecider.Decide(s, cmd)
	}
	return d
}

func TestCommandHandlerRetriesConflicts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store, _ := b.open(t)
			testCommandHandlerRetriesConflicts(t, store)
		})
	}
}

func testCommandHandlerRetriesConflicts(t *testing.T, store verity.Store) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	mustHandle(t, newAccounts(t, store, reg, sdk.CommandHandlerConfig{}), "account-1", Open{Owner: "ann"})

	t.Run("a concurrent writer makes the handler reload and decide again", func(t *testing.T) {
		h, err := sdk.NewCommandHandler(store, reg, interfering(t, store, reg, "account-1", 2), sdk.CommandHandlerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		res := mustHandle(t, h, "account-1", Deposit{Amount: 10})
		if res.Attempts != 3 || res.State.Balance != 12 || res.Stream.Revision != 3 {
			t.Fatalf("got %+v, want 3 attempts and balance 2+10", res)
		}
	})
	t.Run("it gives up after MaxAttempts with a Conflict", func(t *testing.T) {
		h, err := sdk.NewCommandHandler(store, reg, interfering(t, store, reg, "account-1", 100), sdk.CommandHandlerConfig{MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Handle(context.Background(), "account-1", Deposit{Amount: 10})
		if !errors.Is(err, verity.ErrConflict) || !strings.Contains(err.Error(), "gave up after 3") || res.Attempts != 3 {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("the backoff honours the context", func(t *testing.T) {
		h, err := sdk.NewCommandHandler(store, reg, interfering(t, store, reg, "account-1", 100), sdk.CommandHandlerConfig{Backoff: time.Hour, MaxBackoff: time.Hour, MaxAttempts: 100})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = h.Handle(ctx, "account-1", Deposit{Amount: 10})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
	t.Run("concurrent commands on one stream all land", func(t *testing.T) {
		h := newAccounts(t, store, reg, sdk.CommandHandlerConfig{MaxAttempts: 100, Backoff: time.Millisecond})
		before, _, err := h.State(context.Background(), "account-1")
		if err != nil {
			t.Fatal(err)
		}
		const writers, each = 4, 5
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for range each {
					if _, err := h.Handle(context.Background(), "account-1", Deposit{Amount: 1}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		after, _, err := h.State(context.Background(), "account-1")
		if err != nil || after.Balance != before.Balance+writers*each {
			t.Fatalf("balance %d, want %d (%v)", after.Balance, before.Balance+writers*each, err)
		}
	})
}

func TestCommandHandlerIsIdempotentByCommandID(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store, _ := b.open(t)
			testCommandHandlerIsIdempotentByCommandID(t, store)
		})
	}
}

func testCommandHandlerIsIdempotentByCommandID(t *testing.T, store verity.Store) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	h := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	mustHandle(t, h, "account-1", Open{Owner: "ann"})
	id := uuid.New()

	first := mustHandle(t, h, "account-1", Deposit{Amount: 10}, sdk.WithCommandID(id))
	mustHandle(t, h, "account-1", Deposit{Amount: 5}) // another command in between
	again := mustHandle(t, h, "account-1", Deposit{Amount: 10}, sdk.WithCommandID(id))

	if !again.Duplicate || first.Duplicate {
		t.Fatalf("Duplicate: first %v, again %v", first.Duplicate, again.Duplicate)
	}
	if again.State != first.State || again.Stream != first.Stream || again.Position != first.Position || len(again.Events) != 1 || again.Events[0] != (Deposited{Amount: 10}) {
		t.Fatalf("the retry returned %+v, the original %+v", again, first)
	}
	recs := readAll(t, store, "account-1")
	if len(recs) != 3 || recs[1].ID != sdk.EventID(id, 0) {
		t.Fatalf("stream holds %d events (want 3), event 1 id %s (want %s)", len(recs), recs[1].ID, sdk.EventID(id, 0))
	}

	t.Run("concurrent retries of one command append it once", func(t *testing.T) {
		id := uuid.New()
		var wg sync.WaitGroup
		results := make([]sdk.Result[Account, AccountEvent], 4)
		for i := range results {
			wg.Go(func() {
				var err error
				if results[i], err = h.Handle(context.Background(), "account-1", Deposit{Amount: 100}, sdk.WithCommandID(id)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		s, _, err := h.State(context.Background(), "account-1")
		if err != nil || s.Balance != 115 {
			t.Fatalf("balance %d, want 115 (%v)", s.Balance, err)
		}
		for i, r := range results {
			if r.State != s || r.Position != results[0].Position {
				t.Fatalf("result %d is %+v, result 0 %+v", i, r, results[0])
			}
		}
	})
}

// counting wraps the account decider to count the events folded.
func counting(n *atomic.Int32) sdk.Decider[Account, any, AccountEvent] {
	d := accountDecider
	d.Evolve = func(s Account, e AccountEvent) Account {
		n.Add(1)
		return accountDecider.Evolve(s, e)
	}
	return d
}

func TestCommandHandlerSnapshots(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store, _ := b.open(t)
			testCommandHandlerSnapshots(t, store)
		})
	}
}

func testCommandHandlerSnapshots(t *testing.T, store verity.Store) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	cfg := sdk.CommandHandlerConfig{SnapshotEvery: 3}
	h := newAccounts(t, store, reg, cfg)
	mustHandle(t, h, "account-1", Open{Owner: "ann"})
	for range 7 {
		mustHandle(t, h, "account-1", Deposit{Amount: 1})
	}
	// Events 0..7; snapshots after revisions 2 and 5 (every 3 events folded).
	snaps := readAll(t, store, sdk.SnapshotStreamOf("account-1"))
	if len(snaps) != 1 || snaps[0].Type != sdk.SnapshotEventType {
		t.Fatalf("snapshot stream shows %d events, want the last one only ($maxCount 1)", len(snaps))
	}
	meta, err := store.GetStreamMetadata(context.Background(), sdk.SnapshotStreamOf("account-1"))
	if err != nil || meta.Metadata.MaxCount != 1 {
		t.Fatalf("snapshot stream metadata %+v, %v", meta, err)
	}

	t.Run("loading starts from the latest snapshot", func(t *testing.T) {
		var folded atomic.Int32
		hc, err := sdk.NewCommandHandler(store, reg, counting(&folded), cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, st, err := hc.State(context.Background(), "account-1")
		if err != nil || s != (Account{Open: true, Owner: "ann", Balance: 7}) || st.Revision != 7 {
			t.Fatalf("got %+v %+v %v", s, st, err)
		}
		if folded.Load() != 2 {
			t.Fatalf("folded %d events, want 2 (revisions 6 and 7 after the snapshot at 5)", folded.Load())
		}
	})
	t.Run("a snapshot of another version is ignored", func(t *testing.T) {
		var folded atomic.Int32
		cfg2 := cfg
		cfg2.SnapshotVersion = "2"
		hc, err := sdk.NewCommandHandler(store, reg, counting(&folded), cfg2)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := hc.State(context.Background(), "account-1")
		if err != nil || s.Balance != 7 || folded.Load() != 8 {
			t.Fatalf("got %+v, folded %d (want all 8), %v", s, folded.Load(), err)
		}
	})
	t.Run("a soft-deleted stream starts over whatever its snapshot says", func(t *testing.T) {
		if _, err := store.DeleteStream(context.Background(), "account-1", verity.Any()); err != nil {
			t.Fatal(err)
		}
		res, err := h.Handle(context.Background(), "account-1", Deposit{Amount: 1})
		if err != ErrNotOpen {
			t.Fatalf("got %+v, %v; want ErrNotOpen on the emptied stream", res, err)
		}
	})
}

func TestCommandHandlerReadsOldAndUnknownEvents(t *testing.T) {
	store := openEngine(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	addDepositUpcasters(t, reg)
	h := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	mustHandle(t, h, "account-1", Open{Owner: "ann"})
	_, err := store.Append(context.Background(), "account-1", verity.Any(),
		verity.EventData{Type: "Deposit.v1", Data: []byte(`{"cents":500}`)},
		verity.EventData{Type: "Deposit.v2", Data: []byte(`{"amount":2,"currency":"EUR"}`)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("old versions are upcast while folding", func(t *testing.T) {
		res := mustHandle(t, h, "account-1", Withdraw{Amount: 7})
		if res.State.Balance != 0 {
			t.Fatalf("balance %d after withdrawing the 5+2 deposited in old versions", res.State.Balance)
		}
	})

	if _, err := store.Append(context.Background(), "account-1", verity.Any(), verity.EventData{Type: "AuditNote", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	t.Run("an unknown type fails the load", func(t *testing.T) {
		_, err := h.Handle(context.Background(), "account-1", Deposit{Amount: 1})
		if !errors.Is(err, sdk.ErrUnknownType) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("an unknown type is skipped when the registry says so", func(t *testing.T) {
		skipping := newRegistry(t, sdk.RegistryOptions{SkipUnknown: true})
		addDepositUpcasters(t, skipping)
		res := mustHandle(t, newAccounts(t, store, skipping, sdk.CommandHandlerConfig{}), "account-1", Deposit{Amount: 1})
		if res.State.Balance != 1 || res.Stream.Revision != 5 {
			t.Fatalf("got %+v", res)
		}
	})
	t.Run("a registered type that is not the decider's event is refused", func(t *testing.T) {
		other := newRegistry(t, sdk.RegistryOptions{SkipUnknown: true})
		sdk.MustRegister[struct{ X int }](other, "AuditNote")
		_, err := newAccounts(t, store, other, sdk.CommandHandlerConfig{}).Handle(context.Background(), "account-1", Deposit{Amount: 1})
		if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "AccountEvent") {
			t.Fatalf("got %v", err)
		}
	})
}
