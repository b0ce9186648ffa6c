package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/persistent"
)

// recvWithin receives one message of a consumer, failing the test after 10 s.
func recvWithin(t *testing.T, c verity.GroupConsumer) verity.GroupMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func TestALogGroupParksWhatItsConsumerMayNotRead(t *testing.T) {
	ctx := context.Background()
	store, svc := decisionFixture(t, Config{DefaultAccess: []Action{Read, Write, Delete, MetadataRead, MetadataWrite}})
	// order-vip is in the orders service's category, but its $acl lets only carol read it.
	if _, err := store.Append(ctx, "order-vip", verity.Any(), event("Happened")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SetStreamMetadata(ctx, "order-vip", verity.Any(), verity.StreamMetadata{ACL: &verity.StreamACL{Read: []string{"carol"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "order-7", verity.Any(), event("Happened")); err != nil {
		t.Fatal(err)
	}
	mgr, err := persistent.New(store, persistent.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	spec := verity.GroupSpec{Stream: verity.AllStream, Group: "orders", Filter: verity.Filter{Categories: []string{"order"}}}
	if err := svc.GuardGroups(mgr, admin).CreateGroup(ctx, spec); err != nil {
		t.Fatal(err)
	}

	c, err := svc.GuardGroups(mgr, orders).JoinGroup(ctx, verity.AllStream, "orders", verity.JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The category's events in log order, order-vip's left out: order-7, order-9, order-7.
	var got []string
	for range 3 {
		m := recvWithin(t, c)
		got = append(got, m.Event.Stream)
		if err := c.Ack(ctx, m.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"order-7", "order-9", "order-7"}; !slices.Equal(got, want) {
		t.Fatalf("the orders service got %v, want %v", got, want)
	}

	// The hidden event is parked, naming who could not read what.
	deadline := time.Now().Add(10 * time.Second)
	var parked []verity.RecordedEvent
	for {
		info, err := mgr.GetGroup(ctx, verity.AllStream, "orders")
		if err != nil {
			t.Fatal(err)
		}
		parked, err = store.ReadStream(ctx, verity.ParkedStreamOf(verity.AllStream, "orders"), verity.ReadStreamOptions{})
		if err != nil && !errors.Is(err, verity.ErrNotFound) {
			t.Fatal(err)
		}
		if info.Parked == 1 && len(parked) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked = %d, %d parked events recorded; want 1", info.Parked, len(parked))
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(string(parked[0].Data), `"stream":"order-vip"`) || !strings.Contains(string(parked[0].Data), `user \"orders\" may not read stream \"order-vip\"`) {
		t.Fatalf("the parked event is %s; want order-vip's, with the reason", parked[0].Data)
	}
	c.Close()

	// Carol, whom the $acl names, gets it when it is replayed.
	cc, err := svc.GuardGroups(mgr, carol).JoinGroup(ctx, verity.AllStream, "orders", verity.JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := svc.GuardGroups(mgr, carol).ReplayParked(ctx, verity.AllStream, "orders", verity.ReplayParkedOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := recvWithin(t, cc); m.Event.Stream != "order-vip" {
		t.Fatalf("after the replay carol got an event of %s, want order-vip's", m.Event.Stream)
	}
}
