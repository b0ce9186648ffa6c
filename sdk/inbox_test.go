package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
)

const cmdCategory = "bankcommand"

// submit appends a command and fails the test on error.
func submit(t testing.TB, store verity.Store, typ, data string) sdk.Command {
	t.Helper()
	cmd := sdk.Command{ID: uuid.New(), Category: cmdCategory, Type: typ, Data: json.RawMessage(data),
		Meta: sdk.Metadata{CorrelationID: "req-" + typ}}
	if _, err := sdk.SubmitCommand(context.Background(), store, cmd); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func startInbox(t testing.TB, groups verity.Groups, store verity.Store, cfg sdk.CommandInboxConfig, h sdk.CommandFunc) *sdk.CommandInbox {
	t.Helper()
	if cfg.Category == "" {
		cfg.Category = cmdCategory
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	in, err := sdk.StartCommandInbox(context.Background(), groups, store, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

// await waits for a command's outcome, failing the test if none lands within 10s.
func await(t testing.TB, store verity.Store, id uuid.UUID) sdk.CommandOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := sdk.AwaitCommandOutcome(ctx, store, cmdCategory, id)
	if err != nil {
		t.Fatalf("await command %s: %v (outcome so far %+v)", id, err, out)
	}
	return out
}

func streamLen(t testing.TB, store verity.Store, stream string) int {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), stream, verity.ReadStreamOptions{})
	if errors.Is(err, verity.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestSubmitCommand(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testSubmitCommand(t, b) })
	}
}

func testSubmitCommand(t *testing.T, b backend) {
	store, _ := b.open(t)
	ctx := context.Background()
	cmd := sdk.Command{ID: uuid.New(), Category: cmdCategory, Type: "OpenAccount", Data: json.RawMessage(`{"owner": "ann"}`),
		Meta: sdk.Metadata{CorrelationID: "req-1", Extra: map[string]json.RawMessage{sdk.TraceparentKey: json.RawMessage(`"00-abc-def-01"`)}}}
	first, err := sdk.SubmitCommand(ctx, store, cmd)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a new command is pending at revision 0 of its stream", func(t *testing.T) {
		out, err := sdk.ReadCommandOutcome(ctx, store, cmdCategory, cmd.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := sdk.CommandOutcome{ID: cmd.ID, Category: cmdCategory, Type: "OpenAccount", State: sdk.CommandPending, Position: first.Position}
		if fmt.Sprint(out) != fmt.Sprint(want) || first.Revision != 0 {
			t.Fatalf("outcome %+v, append %+v; want %+v at revision 0", out, first, want)
		}
		evs, err := store.ReadStream(ctx, sdk.CommandStream(cmdCategory, cmd.ID), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		md, _ := sdk.ParseMetadata(evs[0].Metadata)
		if len(evs) != 1 || evs[0].ID != cmd.ID || md.CorrelationID != "req-1" || string(md.Extra[sdk.TraceparentKey]) != `"00-abc-def-01"` {
			t.Fatalf("command stream holds %+v (metadata %s)", evs, evs[0].Metadata)
		}
	})

	t.Run("a retry of the same command returns the first result and writes nothing", func(t *testing.T) {
		retry := cmd
		retry.Data = json.RawMessage(`{"owner":"ann"}`) // other whitespace, same JSON
		retry.Meta = sdk.Metadata{CorrelationID: "req-2"}
		again, err := sdk.SubmitCommand(ctx, store, retry)
		if err != nil || again != first {
			t.Fatalf("retry: %+v, %v; want %+v", again, err, first)
		}
		if n := streamLen(t, store, sdk.CommandStream(cmdCategory, cmd.ID)); n != 1 {
			t.Fatalf("the command stream has %d events, want 1", n)
		}
	})

	t.Run("another command under the same id is a conflict", func(t *testing.T) {
		for _, other := range []sdk.Command{
			{ID: cmd.ID, Category: cmdCategory, Type: "OpenAccount", Data: json.RawMessage(`{"owner":"bob"}`)},
			{ID: cmd.ID, Category: cmdCategory, Type: "CloseAccount", Data: cmd.Data},
		} {
			if _, err := sdk.SubmitCommand(ctx, store, other); !errors.Is(err, verity.ErrConflict) {
				t.Fatalf("submitting %s %s under a used id: %v, want Conflict", other.Type, other.Data, err)
			}
		}
	})

	t.Run("bad commands are refused as invalid", func(t *testing.T) {
		for name, bad := range map[string]sdk.Command{
			"empty category":       {ID: uuid.New(), Type: "T"},
			"category with a dash": {ID: uuid.New(), Category: "bank-command", Type: "T"},
			"system category":      {ID: uuid.New(), Category: "$bank", Type: "T"},
			"zero id":              {Category: cmdCategory, Type: "T"},
			"empty type":           {ID: uuid.New(), Category: cmdCategory},
			"data not JSON":        {ID: uuid.New(), Category: cmdCategory, Type: "T", Data: json.RawMessage(`{"a":`)},
		} {
			if _, err := sdk.SubmitCommand(ctx, store, bad); !errors.Is(err, verity.ErrInvalid) {
				t.Errorf("%s: %v, want Invalid", name, err)
			}
		}
	})

	t.Run("an unknown command is not found", func(t *testing.T) {
		if _, err := sdk.ReadCommandOutcome(ctx, store, cmdCategory, uuid.New()); !errors.Is(err, verity.ErrNotFound) {
			t.Fatalf("read: %v, want NotFound", err)
		}
		if _, err := sdk.AwaitCommandOutcome(ctx, store, cmdCategory, uuid.New()); !errors.Is(err, verity.ErrNotFound) {
			t.Fatalf("await: %v, want NotFound", err)
		}
	})
}

func TestCommandInbox(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testCommandInbox(t, b) })
	}
}

func testCommandInbox(t *testing.T, b backend) {
	store, groups := b.open(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	accounts := newAccounts(t, store, reg, sdk.CommandHandlerConfig{})

	var mu sync.Mutex
	calls := map[uuid.UUID]int{}
	var seenMeta sdk.Metadata
	failUntil := map[string]int{"Flaky": 2, "Broken": 1 << 30}
	h := func(ctx context.Context, cmd sdk.Command) (any, error) {
		mu.Lock()
		calls[cmd.ID]++
		n := calls[cmd.ID]
		if cmd.Type == "OpenAccount" {
			seenMeta = cmd.Meta
		}
		mu.Unlock()
		switch cmd.Type {
		case "OpenAccount":
			var body struct {
				Account string `json:"account"`
				Owner   string `json:"owner"`
			}
			if err := json.Unmarshal(cmd.Data, &body); err != nil {
				return nil, sdk.Reject(err)
			}
			_, err := accounts.Handle(ctx, "account-"+body.Account, Open{Owner: body.Owner}, sdk.WithCommandID(cmd.ID))
			if errors.Is(err, ErrAlreadyOpen) {
				return nil, sdk.Reject(err)
			}
			return map[string]string{"account": body.Account}, err
		case "Missing":
			return nil, verity.Errorf(verity.NotFound, "open", "no customer %q", "c-9")
		case "Race":
			if n == 1 {
				return nil, fmt.Errorf("lost a race: %w", verity.WrongRevision("append", "account-r", verity.Exact(3), verity.StreamState{Exists: true, Revision: 4}))
			}
			return nil, nil
		case "Taken":
			return nil, verity.Errorf(verity.Conflict, "open", "account %q exists already", "a1")
		case "Flaky", "Broken":
			if n <= failUntil[cmd.Type] {
				return nil, fmt.Errorf("attempt %d: the bank is down", n)
			}
			return nil, nil
		}
		return nil, sdk.Reject(fmt.Errorf("unknown command type %q", cmd.Type))
	}
	startInbox(t, groups, store, sdk.CommandInboxConfig{MaxAttempts: 3, Backoff: time.Millisecond}, h)
	callsOf := func(id uuid.UUID) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[id]
	}

	t.Run("a command that succeeds records its result", func(t *testing.T) {
		cmd := submit(t, store, "OpenAccount", `{"account":"a1","owner":"ann"}`)
		out := await(t, store, cmd.ID)
		if out.State != sdk.CommandSucceeded || string(out.Result) != `{"account":"a1"}` || out.Error != "" || out.Type != "OpenAccount" {
			t.Fatalf("outcome %+v", out)
		}
		if streamLen(t, store, "account-a1") != 1 || callsOf(cmd.ID) != 1 {
			t.Fatalf("account events %d, handler calls %d; want 1 and 1", streamLen(t, store, "account-a1"), callsOf(cmd.ID))
		}
		mu.Lock()
		defer mu.Unlock()
		if seenMeta.CorrelationID != "req-OpenAccount" {
			t.Fatalf("the handler saw metadata %v", seenMeta)
		}
		evs, err := store.ReadStream(context.Background(), sdk.CommandStream(cmdCategory, cmd.ID), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[1].Type != sdk.CommandSucceededType || sdk.CausationID(evs[1]) != cmd.ID.String() || sdk.CorrelationID(evs[1]) != "req-OpenAccount" {
			t.Fatalf("command stream %+v", evs)
		}
	})

	t.Run("a rejection is recorded with its kind and not retried", func(t *testing.T) {
		for _, c := range []struct{ typ, data, kind, msg string }{
			{"OpenAccount", `{"account":"a1","owner":"bob"}`, "invalid", "account is open already"},
			{"Missing", `{}`, "not_found", `open: no customer "c-9"`},
			{"Teleport", `{}`, "invalid", `unknown command type "Teleport"`},
			{"Taken", `{}`, "conflict", `open: account "a1" exists already`},
		} {
			cmd := submit(t, store, c.typ, c.data)
			out := await(t, store, cmd.ID)
			if out.State != sdk.CommandRejected || out.Kind != c.kind || out.Error != c.msg || out.Result != nil {
				t.Errorf("%s: outcome %+v, want rejected %s %q", c.typ, out, c.kind, c.msg)
			}
			if n := callsOf(cmd.ID); n != 1 {
				t.Errorf("%s: handler called %d times, want 1", c.typ, n)
			}
		}
	})

	t.Run("a failing handler is retried and can still succeed", func(t *testing.T) {
		cmd := submit(t, store, "Flaky", `{}`)
		if out := await(t, store, cmd.ID); out.State != sdk.CommandSucceeded || out.Result != nil {
			t.Fatalf("outcome %+v", out)
		}
		if n := callsOf(cmd.ID); n != 3 {
			t.Fatalf("handler called %d times, want 3", n)
		}
	})

	t.Run("a wrong expected revision is a race to retry, not a rejection", func(t *testing.T) {
		cmd := submit(t, store, "Race", `{}`)
		if out := await(t, store, cmd.ID); out.State != sdk.CommandSucceeded {
			t.Fatalf("outcome %+v", out)
		}
		if n := callsOf(cmd.ID); n != 2 {
			t.Fatalf("handler called %d times, want 2", n)
		}
	})

	t.Run("a handler that keeps failing is recorded failed after MaxAttempts, not parked", func(t *testing.T) {
		cmd := submit(t, store, "Broken", `{}`)
		out := await(t, store, cmd.ID)
		if out.State != sdk.CommandFailed || out.Error != "attempt 3: the bank is down" {
			t.Fatalf("outcome %+v", out)
		}
		if n := callsOf(cmd.ID); n != 3 {
			t.Fatalf("handler called %d times, want 3", n)
		}
		eventually(t, "the group is empty", func() bool {
			info, err := groups.GetGroup(context.Background(), verity.AllStream, cmdCategory+"-inbox")
			return err == nil && info.Parked == 0 && info.InFlight == 0 && info.Waiting == 0
		})
	})

	t.Run("outcomes and events that are not commands are not handled", func(t *testing.T) {
		if _, err := store.Append(context.Background(), cmdCategory+"-not-a-command", verity.NoStream(),
			verity.EventData{ID: uuid.New(), Type: "Noise", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		cmd := submit(t, store, "Missing", `{}`)
		await(t, store, cmd.ID)
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, n := range calls {
			total += n
		}
		// 1 OpenAccount + 4 rejections + 3 Flaky + 2 Race + 3 Broken + this one.
		if total != 14 {
			t.Fatalf("the handler was called %d times in all, want 14: %v", total, calls)
		}
	})
}

func TestAwaitCommandOutcome(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testAwaitCommandOutcome(t, b) })
	}
}

func testAwaitCommandOutcome(t *testing.T, b backend) {
	store, groups := b.open(t)
	cmd := submit(t, store, "Ping", `{"n":1}`)

	t.Run("it returns pending and the context's error when no outcome lands", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		out, err := sdk.AwaitCommandOutcome(ctx, store, cmdCategory, cmd.ID)
		if !errors.Is(err, context.DeadlineExceeded) || out.State != sdk.CommandPending || out.ID != cmd.ID || out.Type != "Ping" {
			t.Fatalf("await: %+v, %v; want pending and DeadlineExceeded", out, err)
		}
	})

	t.Run("it returns as soon as the outcome lands", func(t *testing.T) {
		type answer struct {
			out sdk.CommandOutcome
			err error
		}
		ch := make(chan answer, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go func() {
			out, err := sdk.AwaitCommandOutcome(ctx, store, cmdCategory, cmd.ID)
			ch <- answer{out, err}
		}()
		startInbox(t, groups, store, sdk.CommandInboxConfig{}, func(ctx context.Context, cmd sdk.Command) (any, error) {
			return json.RawMessage(`{"pong":true}`), nil
		})
		a := <-ch
		if a.err != nil || a.out.State != sdk.CommandSucceeded || string(a.out.Result) != `{"pong":true}` {
			t.Fatalf("await: %+v, %v", a.out, a.err)
		}
	})
}

// TestCommandInboxDuplicates checks that a command handled more than once (two inboxes
// on separate groups, or an inbox closed mid-command and started again) records exactly
// one outcome, and that a handler using WithCommandID has its effects once.
func TestCommandInboxDuplicates(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testCommandInboxDuplicates(t, b) })
	}
}

func testCommandInboxDuplicates(t *testing.T, b backend) {
	store, groups := b.open(t)
	reg := newRegistry(t, sdk.RegistryOptions{})
	// Four consumers deposit into one stream: give the optimistic concurrency room.
	accounts := newAccounts(t, store, reg, sdk.CommandHandlerConfig{MaxAttempts: 50})
	mustHandle(t, accounts, "account-d", Open{Owner: "dan"})

	var calls atomic.Int32
	deposit := func(ctx context.Context, cmd sdk.Command) (any, error) {
		calls.Add(1)
		res, err := accounts.Handle(ctx, "account-d", Deposit{Amount: 1}, sdk.WithCommandID(cmd.ID))
		if err != nil {
			return nil, err
		}
		return map[string]int{"balance": res.State.Balance}, nil
	}

	t.Run("two inboxes handling the same commands record one outcome each", func(t *testing.T) {
		var cmds []sdk.Command
		for i := range 20 {
			cmds = append(cmds, submit(t, store, "Deposit", fmt.Sprintf(`{"n":%d}`, i)))
		}
		startInbox(t, groups, store, sdk.CommandInboxConfig{Group: "inbox-a", Consumers: 2}, deposit)
		startInbox(t, groups, store, sdk.CommandInboxConfig{Group: "inbox-b", Consumers: 2}, deposit)
		for _, cmd := range cmds {
			if out := await(t, store, cmd.ID); out.State != sdk.CommandSucceeded {
				t.Fatalf("outcome %+v", out)
			}
		}
		eventually(t, "both groups are done", func() bool {
			for _, g := range []string{"inbox-a", "inbox-b"} {
				info, err := groups.GetGroup(context.Background(), verity.AllStream, g)
				if err != nil || info.InFlight != 0 || info.Waiting != 0 || info.Acked < 40 {
					return false
				}
			}
			return true
		})
		for _, cmd := range cmds {
			if n := streamLen(t, store, sdk.CommandStream(cmdCategory, cmd.ID)); n != 2 {
				t.Fatalf("command %s has %d events, want 2", cmd.ID, n)
			}
		}
		if n := streamLen(t, store, "account-d"); n != 21 {
			t.Fatalf("account-d has %d events, want 21 (opened + 20 deposits)", n)
		}
		t.Logf("the handler ran %d times for 20 commands", calls.Load())
	})

	t.Run("a command interrupted by a restart is handled again with its effect once", func(t *testing.T) {
		started := make(chan struct{})
		var once sync.Once
		stuck := func(ctx context.Context, cmd sdk.Command) (any, error) {
			if _, err := deposit(ctx, cmd); err != nil {
				return nil, err
			}
			once.Do(func() { close(started) })
			<-ctx.Done() // the effect is done, the outcome is not: the process "dies" here
			return nil, ctx.Err()
		}
		first, err := sdk.StartCommandInbox(context.Background(), groups, store, sdk.CommandInboxConfig{Category: cmdCategory, Group: "inbox-r", Logger: quiet}, stuck)
		if err != nil {
			t.Fatal(err)
		}
		// The group starts at the log's start: the commands of the previous test come first,
		// already done, and are acked without calling the handler.
		cmd := submit(t, store, "Deposit", `{"n":"restart"}`)
		<-started
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		if out, err := sdk.ReadCommandOutcome(context.Background(), store, cmdCategory, cmd.ID); err != nil || out.State != sdk.CommandPending {
			t.Fatalf("after the interruption: %+v, %v; want pending", out, err)
		}
		startInbox(t, groups, store, sdk.CommandInboxConfig{Group: "inbox-r"}, deposit)
		out := await(t, store, cmd.ID)
		if out.State != sdk.CommandSucceeded || string(out.Result) != `{"balance":21}` {
			t.Fatalf("outcome %+v, want succeeded with balance 21", out)
		}
		if n := streamLen(t, store, "account-d"); n != 22 {
			t.Fatalf("account-d has %d events, want 22", n)
		}
	})
}

func TestCommandInboxConfig(t *testing.T) {
	store := openEngine(t)
	groups := openGroups(t, store)
	h := func(context.Context, sdk.Command) (any, error) { return nil, nil }
	for name, cfg := range map[string]sdk.CommandInboxConfig{
		"no category":          {},
		"a category with dash": {Category: "a-b"},
		"negative consumers":   {Category: "c", Consumers: -1},
		"negative attempts":    {Category: "c", MaxAttempts: -1},
	} {
		if _, err := sdk.StartCommandInbox(context.Background(), groups, store, cfg, h); !errors.Is(err, verity.ErrInvalid) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	if _, err := sdk.StartCommandInbox(context.Background(), groups, store, sdk.CommandInboxConfig{Category: "c"}, nil); !errors.Is(err, verity.ErrInvalid) {
		t.Errorf("nil handler: %v, want Invalid", err)
	}
	t.Run("an existing group is reused", func(t *testing.T) {
		a := startInbox(t, groups, store, sdk.CommandInboxConfig{Category: "c"}, h)
		b := startInbox(t, groups, store, sdk.CommandInboxConfig{Category: "c"}, h)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		info, err := groups.GetGroup(context.Background(), verity.AllStream, "c-inbox")
		if err != nil || info.Filter.Categories[0] != "c" || info.Settings.MaxRetryCount < sdk.DefaultMaxAttempts {
			t.Fatalf("group %+v, %v", info, err)
		}
	})
}
