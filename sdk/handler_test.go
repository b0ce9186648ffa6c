package sdk_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/sdk"
)

// A transfer between two accounts, run by a process manager: TransferRequested on
// "transfer-N" makes it withdraw from one account and deposit to the other.
type TransferRequested struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
}

func openGroups(t testing.TB, store verity.Store) *persistent.Manager {
	t.Helper()
	m, err := persistent.New(store, persistent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func createGroup(t testing.TB, groups verity.Groups, spec verity.GroupSpec) {
	t.Helper()
	if err := groups.CreateGroup(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

// quiet discards the logs of the runners, which park events on purpose here.
var quiet = slog.New(slog.DiscardHandler)

// eventually waits for cond, failing the test after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startRunner(t testing.TB, groups verity.Groups, reg *sdk.Registry, cfg sdk.GroupRunnerConfig, h sdk.HandlerFunc) *sdk.GroupRunner {
	t.Helper()
	r, err := sdk.StartGroupRunner(context.Background(), groups, reg, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func appendEvent(t testing.TB, store verity.Store, reg *sdk.Registry, stream string, v any, md sdk.Metadata) verity.RecordedEvent {
	t.Helper()
	ed, err := reg.Encode(v, md)
	if err != nil {
		t.Fatal(err)
	}
	ed.ID = uuid.New()
	res, err := store.Append(context.Background(), stream, verity.Any(), ed)
	if err != nil {
		t.Fatal(err)
	}
	return verity.RecordedEvent{ID: ed.ID, Type: ed.Type, Data: ed.Data, Metadata: ed.Metadata, Stream: stream, Revision: res.Revision, Position: res.Position}
}

func TestProcessManager(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testProcessManager(t, b) })
	}
}

func testProcessManager(t *testing.T, b backend) {
	store, groups := b.open(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	sdk.MustRegister[TransferRequested](reg, "TransferRequested")
	accounts := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	mustHandle(t, accounts, "account-a", Open{Owner: "ann"})
	mustHandle(t, accounts, "account-a", Deposit{Amount: 100})
	mustHandle(t, accounts, "account-b", Open{Owner: "bob"})

	createGroup(t, groups, verity.GroupSpec{Group: "transfers", Filter: verity.Filter{Categories: []string{"transfer"}}})
	var calls sync.Map // event id -> number of calls
	var failFirst atomic.Bool
	failFirst.Store(true)
	transfers := func(ctx context.Context, e sdk.Event) error {
		n, _ := calls.LoadOrStore(e.Recorded.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		tr, ok := e.Data.(TransferRequested)
		if !ok {
			return sdk.Park(errors.New("not a transfer"))
		}
		if _, err := accounts.Handle(ctx, "account-"+tr.From, Withdraw{Amount: tr.Amount}, sdk.ReactingTo(e, "withdraw")); err != nil {
			return err
		}
		if _, err := accounts.Handle(ctx, "account-"+tr.To, Deposit{Amount: tr.Amount}, sdk.ReactingTo(e, "deposit")); err != nil {
			return err
		}
		if failFirst.CompareAndSwap(true, false) {
			// Crash after the commands, before the ack: the group delivers the event again.
			return errors.New("lost the ack")
		}
		return nil
	}
	startRunner(t, groups, reg, sdk.GroupRunnerConfig{Group: "transfers", Consumers: 2, Logger: quiet}, transfers)

	cause := appendEvent(t, store, reg, "transfer-1", TransferRequested{From: "a", To: "b", Amount: 30}, sdk.Metadata{CorrelationID: "req-42"})
	eventually(t, "the transfer was handled twice (once redelivered) and acked", func() bool {
		n, ok := calls.Load(cause.ID)
		if !ok || n.(*atomic.Int32).Load() < 2 {
			return false
		}
		info, err := groups.GetGroup(context.Background(), verity.AllStream, "transfers")
		return err == nil && info.Acked == 1
	})

	t.Run("a redelivered event does not double the commands' effects", func(t *testing.T) {
		a, _, _ := accounts.State(context.Background(), "account-a")
		b, _, _ := accounts.State(context.Background(), "account-b")
		if a.Balance != 70 || b.Balance != 30 {
			t.Fatalf("balances a=%d b=%d, want 70 and 30", a.Balance, b.Balance)
		}
	})
	t.Run("the commands' events carry the correlation and causation ids", func(t *testing.T) {
		for _, stream := range []string{"account-a", "account-b"} {
			recs := readAll(t, store, stream)
			last := recs[len(recs)-1]
			if sdk.CorrelationID(last) != "req-42" || sdk.CausationID(last) != cause.ID.String() {
				t.Fatalf("%s's last event has metadata %s, want correlation req-42 and causation %s", stream, last.Metadata, cause.ID)
			}
		}
	})
	t.Run("an event without a correlation id starts one with its own id", func(t *testing.T) {
		second := appendEvent(t, store, reg, "transfer-2", TransferRequested{From: "b", To: "a", Amount: 5}, sdk.Metadata{})
		eventually(t, "the second transfer was handled", func() bool {
			recs := readAll(t, store, "account-a")
			return sdk.CausationID(recs[len(recs)-1]) == second.ID.String()
		})
		recs := readAll(t, store, "account-a")
		if got := sdk.CorrelationID(recs[len(recs)-1]); got != second.ID.String() {
			t.Fatalf("correlation id %q, want the causing event's id %s", got, second.ID)
		}
	})
	t.Run("a poison event is parked without reaching the handler", func(t *testing.T) {
		res, err := store.Append(context.Background(), "transfer-3", verity.Any(), verity.EventData{Type: "TransferRequested", Data: []byte(`{"amount":"lots"}`)})
		if err != nil {
			t.Fatal(err)
		}
		// GroupInfo.Parked counts a park as soon as it is decided; the parked stream has
		// it once written.
		eventually(t, "the poison event was parked and written to the parked stream", func() bool {
			info, err := groups.GetGroup(context.Background(), verity.AllStream, "transfers")
			if err != nil || info.Parked != 1 {
				return false
			}
			parked, err := store.ReadStream(context.Background(), verity.ParkedStreamOf(verity.AllStream, "transfers"), verity.ReadStreamOptions{})
			return err == nil && len(parked) == 1
		})
		recs := readAll(t, store, "transfer-3")
		if _, called := calls.Load(recs[0].ID); called || recs[0].Position != res.Position {
			t.Fatal("the handler was called with the poison event")
		}
	})
}

func TestGroupRunner(t *testing.T) {
	store := openEngine(t)
	groups := openGroups(t, store)
	reg := newRegistry(t, sdk.RegistryOptions{SkipUnknown: true})

	t.Run("refuses bad input", func(t *testing.T) {
		for _, err := range []error{
			func() error {
				_, err := sdk.StartGroupRunner(context.Background(), groups, reg, sdk.GroupRunnerConfig{}, func(context.Context, sdk.Event) error { return nil })
				return err
			}(),
			func() error {
				_, err := sdk.StartGroupRunner(context.Background(), nil, reg, sdk.GroupRunnerConfig{Group: "g"}, func(context.Context, sdk.Event) error { return nil })
				return err
			}(),
			func() error {
				_, err := sdk.StartGroupRunner(context.Background(), groups, reg, sdk.GroupRunnerConfig{Group: "g"}, nil)
				return err
			}(),
		} {
			if !errors.Is(err, verity.ErrInvalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		}
		_, err := sdk.StartGroupRunner(context.Background(), groups, reg, sdk.GroupRunnerConfig{Group: "missing"}, func(context.Context, sdk.Event) error { return nil })
		if !errors.Is(err, verity.ErrNotFound) {
			t.Fatalf("joining a missing group: got %v, want NotFound", err)
		}
	})

	createGroup(t, groups, verity.GroupSpec{Stream: "account-1", Group: "audit", Settings: verity.GroupSettings{MaxRetryCount: 2}})
	var mu sync.Mutex
	var seen []any
	var retries []int
	h := func(ctx context.Context, e sdk.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := e.Data.(Deposited); ok && d.Amount == 13 {
			retries = append(retries, e.RetryCount)
			return errors.New("unlucky")
		}
		if d, ok := e.Data.(Deposited); ok && d.Amount == 66 {
			return sdk.Park(errors.New("refused"))
		}
		seen = append(seen, e.Data)
		return nil
	}
	r := startRunner(t, groups, reg, sdk.GroupRunnerConfig{Group: "audit", Stream: "account-1", Logger: quiet}, h)
	accounts := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	mustHandle(t, accounts, "account-1", Open{Owner: "ann"})
	mustHandle(t, accounts, "account-1", Deposit{Amount: 13})
	mustHandle(t, accounts, "account-1", Deposit{Amount: 66})
	if _, err := store.Append(context.Background(), "account-1", verity.Any(), verity.EventData{Type: "Unknown", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, accounts, "account-1", Deposit{Amount: 1})
	info := func() verity.GroupInfo {
		info, err := groups.GetGroup(context.Background(), "account-1", "audit")
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	eventually(t, "every event was acked or parked", func() bool {
		i := info()
		return i.Acked == 3 && i.Parked == 2
	})

	t.Run("a failing handler is retried until the group parks the event", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		if len(retries) != 3 || retries[0] != 0 || retries[2] != 2 {
			t.Fatalf("the failing event was handled with retry counts %v, want [0 1 2]", retries)
		}
	})
	t.Run("Park parks at once and an unknown type is skipped", func(t *testing.T) {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 || seen[0] != (Opened{Owner: "ann"}) || seen[1] != (Deposited{Amount: 1}) {
			t.Fatalf("handled %v", seen)
		}
	})
	t.Run("consumers rejoin after the group is updated", func(t *testing.T) {
		if err := groups.UpdateGroup(context.Background(), verity.GroupSpec{Stream: "account-1", Group: "audit", Settings: verity.GroupSettings{MaxRetryCount: 3}}); err != nil {
			t.Fatal(err)
		}
		mustHandle(t, accounts, "account-1", Deposit{Amount: 2})
		eventually(t, "the event after the update was handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == 3
		})
	})
	t.Run("the runner stops with NotFound when the group is deleted", func(t *testing.T) {
		if err := groups.DeleteGroup(context.Background(), "account-1", "audit"); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); !errors.Is(err, verity.ErrNotFound) {
			t.Fatalf("Close: got %v, want NotFound", err)
		}
	})
}

func TestSubscriptionRunner(t *testing.T) {
	store := openEngine(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	accounts := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})
	mustHandle(t, accounts, "account-1", Open{Owner: "ann"})
	mustHandle(t, accounts, "account-1", Deposit{Amount: 3})

	var mu sync.Mutex
	balance := 0
	boom := errors.New("boom")
	r, err := sdk.StartSubscriptionRunner(context.Background(), store, reg, sdk.SubscriptionRunnerConfig{Stream: "account-1"}, func(ctx context.Context, e sdk.Event) error {
		mu.Lock()
		defer mu.Unlock()
		switch d := e.Data.(type) {
		case Deposited:
			balance += d.Amount
		case Withdrawn:
			return boom
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustHandle(t, accounts, "account-1", Deposit{Amount: 4})
	eventually(t, "history and live events were handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return balance == 7
	})
	mustHandle(t, accounts, "account-1", Withdraw{Amount: 1})
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not stop on the handler's error")
	}
	if err := r.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: got %v, want the handler's error", err)
	}
}

// An event whose handler finishes while the runner closes is acknowledged, not handed out
// again: Close lets the event being handled finish, ack included.
func TestGroupRunnerAcksTheEventItFinishesWhileClosing(t *testing.T) {
	store := openEngine(t)
	groups := openGroups(t, store)
	reg := newRegistry(t, sdk.RegistryOptions{})
	createGroup(t, groups, verity.GroupSpec{Stream: "account-7", Group: "closing"})
	started := make(chan struct{}, 1)
	r := startRunner(t, groups, reg, sdk.GroupRunnerConfig{Group: "closing", Stream: "account-7", Logger: quiet},
		func(ctx context.Context, e sdk.Event) error {
			started <- struct{}{}
			<-ctx.Done() // the runner is closing; the work is done all the same
			return nil
		})
	appendEvent(t, store, reg, "account-7", Opened{Owner: "ann"}, sdk.Metadata{})
	<-started
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := groups.GetGroup(context.Background(), "account-7", "closing")
	if err != nil {
		t.Fatal(err)
	}
	if info.Acked != 1 {
		t.Fatalf("after Close the group has %d acked (in flight %d, waiting %d), want the handled event acked", info.Acked, info.InFlight, info.Waiting)
	}
}
