package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/server"
)

// kurrentClient connects the official KurrentDB client to srv, as user (empty: anonymous)
// over TLS trusting caFile, or in plaintext when caFile is empty.
func kurrentClient(t testing.TB, srv *server.Server, user, password, caFile string) *kurrentdb.Client {
	t.Helper()
	cred := ""
	if user != "" {
		cred = url.UserPassword(user, password).String() + "@"
	}
	conn := fmt.Sprintf("kurrentdb://%s%s?tls=false", cred, srv.Addr())
	if caFile != "" {
		conn = fmt.Sprintf("kurrentdb://%s%s?tls=true&tlsCAFile=%s", cred, srv.Addr(), url.QueryEscape(caFile))
	}
	conf, err := kurrentdb.ParseConnectionString(conn)
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = kurrentdb.NoopLogging()
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func codeOf(err error) kurrentdb.ErrorCode {
	if e, ok := kurrentdb.FromError(err); !ok && e != nil {
		return e.Code()
	}
	return -1
}

// recvOne receives one event of a persistent subscription, or its drop, within a deadline.
func recvOne(t testing.TB, sub *kurrentdb.PersistentSubscription) *kurrentdb.PersistentSubscriptionEvent {
	t.Helper()
	got := make(chan *kurrentdb.PersistentSubscriptionEvent, 1)
	go func() { got <- sub.Recv() }()
	select {
	case ev := <-got:
		return ev
	case <-time.After(10 * time.Second):
		sub.Close()
		<-got
		t.Fatal("timed out waiting on the persistent subscription")
	}
	return nil
}

// TestPersistentSubscriptionsAreAccessChecked: over TLS with the official client, a user
// limited to the order category uses a group on an order stream, and is refused groups on
// the whole log, other categories, and the restart; metrics describe the groups.
func TestPersistentSubscriptionsAreAccessChecked(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{
		TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin",
		Access: []auth.Rule{{Roles: []string{"orders-service"}, Categories: []string{"order"}, Actions: []auth.Action{auth.Read, auth.Write}}},
	})
	ctx := t.Context()
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	if err := srv.Auth().CreateUser(ctx, admin, "orders", "orders-pw", []string{"orders-service"}); err != nil {
		t.Fatal(err)
	}
	ac := kurrentClient(t, srv, "admin", "s3cret-admin", certFile)
	oc := kurrentClient(t, srv, "orders", "orders-pw", certFile)

	ev := kurrentdb.EventData{EventType: "OrderPlaced", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)}
	if _, err := oc.AppendToStream(ctx, "order-1", kurrentdb.AppendToStreamOptions{}, ev); err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := ac.CreatePersistentSubscriptionToAll(ctx, "everything", kurrentdb.PersistentAllSubscriptionOptions{}); err != nil {
		t.Fatalf("admin creating a group on $all: %v", err)
	}
	if err := oc.CreatePersistentSubscription(ctx, "order-1", "billing", kurrentdb.PersistentStreamSubscriptionOptions{StartFrom: kurrentdb.Start{}}); err != nil {
		t.Fatalf("orders creating a group on order-1: %v", err)
	}
	sub, err := oc.SubscribeToPersistentSubscription(ctx, "order-1", "billing", kurrentdb.SubscribeToPersistentSubscriptionOptions{})
	if err != nil {
		t.Fatalf("orders joining order-1/billing: %v", err)
	}
	defer sub.Close()
	got := recvOne(t, sub)
	if got.EventAppeared == nil || got.EventAppeared.Event.OriginalEvent().EventType != "OrderPlaced" {
		t.Fatalf("orders received %+v, want OrderPlaced", got)
	}
	if err := sub.Ack(got.EventAppeared.Event); err != nil {
		t.Fatal(err)
	}

	if _, err := oc.SubscribeToPersistentSubscriptionToAll(ctx, "everything", kurrentdb.SubscribeToPersistentSubscriptionOptions{}); codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("orders joining the $all group: %v, want access denied", err)
	}
	if err := oc.CreatePersistentSubscription(ctx, "customer-1", "x", kurrentdb.PersistentStreamSubscriptionOptions{}); codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("orders creating a group on customer-1: %v, want access denied", err)
	}
	if err := oc.DeletePersistentSubscriptionToAll(ctx, "everything", kurrentdb.DeletePersistentSubscriptionOptions{}); codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("orders deleting the $all group: %v, want access denied", err)
	}
	if err := oc.RestartPersistentSubscriptionSubsystem(ctx, kurrentdb.RestartPersistentSubscriptionSubsystemOptions{}); codeOf(err) != kurrentdb.ErrorCodeAccessDenied {
		t.Fatalf("orders restarting the subsystem: %v, want access denied", err)
	}
	list, err := oc.ListAllPersistentSubscriptions(ctx, kurrentdb.ListPersistentSubscriptionsOptions{})
	if err != nil || len(list) != 1 || list[0].GroupName != "billing" {
		t.Fatalf("orders listing groups: %v %+v, want only billing", err, list)
	}
	if _, err := srv.Groups().GetGroup(ctx, "customer-1", "x"); !errors.Is(err, verity.ErrNotFound) {
		t.Fatalf("a refused create made a group: %v", err)
	}
	if _, err := srv.Groups().GetGroup(ctx, verity.AllStream, "everything"); err != nil {
		t.Fatalf("a refused delete removed the group: %v", err)
	}

	hc := tlsClient(pool)
	base := "https://" + srv.Addr().String()
	waitForMetric(t, func() bool {
		return metric(t, hc, base, `verity_group_acked_total{group="billing",stream="order-1"}`) == "1"
	})
	if got := metric(t, hc, base, `verity_group_consumers{group="billing",stream="order-1"}`); got != "1" {
		t.Fatalf("verity_group_consumers of billing = %q, want 1", got)
	}
}

// waitForMetric polls cond until it holds, or fails after a deadline.
func waitForMetric(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the metric")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownEndsPersistentSubscriptions: a persistent subscription's Read is ended at
// shutdown rather than waited for, and its group and unacked event survive a restart.
func TestShutdownEndsPersistentSubscriptions(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{Data: dir, Listen: "127.0.0.1:0", Insecure: true, ShutdownTimeout: time.Minute}, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := kurrentClient(t, srv, "", "", "")
	ctx := t.Context()
	ev := kurrentdb.EventData{EventType: "E", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)}
	if _, err := c.AppendToStream(ctx, "order-1", kurrentdb.AppendToStreamOptions{}, ev); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePersistentSubscription(ctx, "order-1", "g", kurrentdb.PersistentStreamSubscriptionOptions{StartFrom: kurrentdb.Start{}}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscribeToPersistentSubscription(ctx, "order-1", "g", kurrentdb.SubscribeToPersistentSubscriptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if got := recvOne(t, sub); got.EventAppeared == nil {
		t.Fatalf("no event before shutdown: %+v", got.SubscriptionDropped)
	}
	began := time.Now()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(began); took > 20*time.Second {
		t.Fatalf("Shutdown took %v: it waited for the persistent subscription", took)
	}
	if got := recvOne(t, sub); got.SubscriptionDropped == nil {
		t.Fatal("the persistent subscription was not dropped at shutdown")
	}

	srv2 := start(t, server.Config{Data: dir, Insecure: true})
	info, err := srv2.Groups().GetGroup(ctx, "order-1", "g")
	if err != nil {
		t.Fatalf("the group after restart: %v", err)
	}
	if info.Checkpointed {
		t.Fatalf("an unacked event was checkpointed: %+v", info)
	}
}
