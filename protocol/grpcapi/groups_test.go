package grpcapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// groupAccess is adminAccess with consumer groups.
type groupAccess struct {
	adminAccess
	groups verity.Groups
}

func (a groupAccess) Groups(auth.Principal) verity.Groups { return a.groups }

// groupFixture is an engine and its consumer groups behind a Service, and a raw
// connection to it.
type groupFixture struct {
	engine *engine.Engine
	groups *persistent.Manager
	svc    *grpcapi.Service
	api    verityv1.GroupsClient
	store  verityv1.StoreClient
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := persistent.New(e, persistent.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := grpcapi.New(groupAccess{adminAccess{e}, m}, grpcapi.Options{})
	svc.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
		m.Close()
		e.Close()
	})
	return &groupFixture{engine: e, groups: m, svc: svc, api: verityv1.NewGroupsClient(conn), store: verityv1.NewStoreClient(conn)}
}

func (f *groupFixture) append(t *testing.T, stream string, n int) {
	t.Helper()
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{ID: uuid.New(), Type: "Changed", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	if _, err := f.engine.Append(t.Context(), stream, verity.Any(), evs...); err != nil {
		t.Fatal(err)
	}
}

// join opens a JoinGroup call and sends the join; it returns the call and its first answer's error.
func (f *groupFixture) join(t *testing.T, ctx context.Context, stream, group string, maxInFlight int64) (grpc.BidiStreamingClient[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse], error) {
	t.Helper()
	js, err := f.api.JoinGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Send fails with io.EOF when the server has already ended the call; Recv says why.
	if err := js.Send(&verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Join_{Join: &verityv1.JoinGroupRequest_Join{Stream: stream, Group: group, MaxInFlight: maxInFlight}}}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	resp, err := js.Recv()
	if err != nil {
		return js, err
	}
	if resp.GetConfirmation() == nil {
		t.Fatalf("the first answer to a join is %v, want a confirmation", resp)
	}
	return js, nil
}

func recvEvent(t *testing.T, js grpc.BidiStreamingClient[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse]) *verityv1.JoinGroupResponse_Event {
	t.Helper()
	resp, err := js.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	ev := resp.GetEvent()
	if ev == nil {
		t.Fatalf("got %v, want an event", resp)
	}
	return ev
}

func recvDone(t *testing.T, js grpc.BidiStreamingClient[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse]) *verityv1.JoinGroupResponse_Done {
	t.Helper()
	resp, err := js.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	d := resp.GetDone()
	if d == nil {
		t.Fatalf("got %v, want a done", resp)
	}
	return d
}

// recvDoneAndEvent receives an answer and an event, in either order: an ack or a nack may
// let the group deliver an event while its answer is being sent.
func recvDoneAndEvent(t *testing.T, js grpc.BidiStreamingClient[verityv1.JoinGroupRequest, verityv1.JoinGroupResponse]) (*verityv1.JoinGroupResponse_Done, *verityv1.JoinGroupResponse_Event) {
	t.Helper()
	var (
		d  *verityv1.JoinGroupResponse_Done
		ev *verityv1.JoinGroupResponse_Event
	)
	for d == nil || ev == nil {
		resp, err := js.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		switch {
		case resp.GetDone() != nil && d == nil:
			d = resp.GetDone()
		case resp.GetEvent() != nil && ev == nil:
			ev = resp.GetEvent()
		default:
			t.Fatalf("got %v, want an answer and an event", resp)
		}
	}
	return d, ev
}

func TestJoinGroupDeliversEventsAndAnswersAcksByID(t *testing.T) {
	f := newGroupFixture(t)
	f.append(t, "order-1", 3)
	if _, err := f.api.CreateGroup(t.Context(), &verityv1.CreateGroupRequest{Spec: &verityv1.GroupSpec{Stream: "order-1", Group: "billing"}}); err != nil {
		t.Fatal(err)
	}
	js, err := f.join(t, t.Context(), "order-1", "billing", 2)
	if err != nil {
		t.Fatal(err)
	}
	a, b := recvEvent(t, js), recvEvent(t, js)
	if a.GetEvent().GetRevision() != 0 || b.GetEvent().GetRevision() != 1 || a.GetRetryCount() != 0 {
		t.Fatalf("first events: revisions %d, %d, retry %d", a.GetEvent().GetRevision(), b.GetEvent().GetRevision(), a.GetRetryCount())
	}
	ack := &verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Ack_{Ack: &verityv1.JoinGroupRequest_Ack{Id: 7, EventIds: [][]byte{a.GetEvent().GetId(), b.GetEvent().GetId()}}}}
	if err := js.Send(ack); err != nil {
		t.Fatal(err)
	}
	// The ack frees room, so the third event may come before the ack's answer.
	d, c := recvDoneAndEvent(t, js)
	if d.GetId() != 7 || d.GetError() != nil {
		t.Fatalf("ack answered %v, want done 7 without error", d)
	}
	info, err := f.api.GetGroup(t.Context(), &verityv1.GetGroupRequest{Stream: "order-1", Group: "billing"})
	if err != nil || info.GetAcked() != 2 || len(info.GetConsumers()) != 1 {
		t.Fatalf("after the ack the group is %v, %v; want 2 acked by 1 consumer", info, err)
	}
	if c.GetEvent().GetRevision() != 2 {
		t.Fatalf("third event has revision %d", c.GetEvent().GetRevision())
	}
	nack := &verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Nack_{Nack: &verityv1.JoinGroupRequest_Nack{Id: 8, EventIds: [][]byte{c.GetEvent().GetId()}, Action: verityv1.NackAction_NACK_ACTION_RETRY}}}
	if err := js.Send(nack); err != nil {
		t.Fatal(err)
	}
	d, again := recvDoneAndEvent(t, js) // the retry may come before the nack's answer
	if d.GetId() != 8 || d.GetError() != nil {
		t.Fatalf("nack answered %v", d)
	}
	if again.GetRetryCount() != 1 || string(again.GetEvent().GetId()) != string(c.GetEvent().GetId()) {
		t.Fatalf("the retried event came back with retry count %d", again.GetRetryCount())
	}

	t.Run("a bad ack is answered by its id and the consumer stays", func(t *testing.T) {
		bad := &verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Ack_{Ack: &verityv1.JoinGroupRequest_Ack{Id: 9, EventIds: [][]byte{{1, 2, 3}}}}}
		if err := js.Send(bad); err != nil {
			t.Fatal(err)
		}
		d := recvDone(t, js)
		if d.GetId() != 9 || d.GetError().GetKind() != "invalid" {
			t.Fatalf("bad ack answered %v, want done 9 with an invalid error", d)
		}
		bad = &verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Nack_{Nack: &verityv1.JoinGroupRequest_Nack{Id: 10, EventIds: [][]byte{c.GetEvent().GetId()}}}}
		if err := js.Send(bad); err != nil {
			t.Fatal(err)
		}
		if d := recvDone(t, js); d.GetId() != 10 || d.GetError().GetKind() != "invalid" {
			t.Fatalf("nack without action answered %v, want done 10 with an invalid error", d)
		}
	})

	t.Run("a second join ends the call with InvalidArgument", func(t *testing.T) {
		if err := js.Send(&verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Join_{Join: &verityv1.JoinGroupRequest_Join{Stream: "order-1", Group: "billing"}}}); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := js.Recv()
			if err != nil {
				requireCode(t, err, codes.InvalidArgument, "second join")
				break
			}
		}
	})
}

func TestJoinGroupRefusals(t *testing.T) {
	f := newGroupFixture(t)
	if _, err := f.api.CreateGroup(t.Context(), &verityv1.CreateGroupRequest{Spec: &verityv1.GroupSpec{Stream: "order-1", Group: "one", Settings: &verityv1.GroupSettings{MaxConsumers: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Run("a missing group is NotFound", func(t *testing.T) {
		_, err := f.join(t, t.Context(), "order-1", "nobody", 0)
		requireCode(t, err, codes.NotFound, "join of a missing group")
	})
	t.Run("a negative max in flight is InvalidArgument", func(t *testing.T) {
		_, err := f.join(t, t.Context(), "order-1", "one", -1)
		requireCode(t, err, codes.InvalidArgument, "join with max in flight -1")
	})
	t.Run("a full group is ResourceExhausted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if _, err := f.join(t, ctx, "order-1", "one", 0); err != nil {
			t.Fatal(err)
		}
		_, err := f.join(t, t.Context(), "order-1", "one", 0)
		requireCode(t, err, codes.ResourceExhausted, "join of a full group")
	})
	t.Run("a call that starts with an ack is InvalidArgument", func(t *testing.T) {
		js, err := f.api.JoinGroup(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = js.Send(&verityv1.JoinGroupRequest{Request: &verityv1.JoinGroupRequest_Ack_{Ack: &verityv1.JoinGroupRequest_Ack{Id: 1}}})
		_, err = js.Recv()
		requireCode(t, err, codes.InvalidArgument, "ack before join")
	})
	t.Run("a call closed before its join is InvalidArgument", func(t *testing.T) {
		js, err := f.api.JoinGroup(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = js.CloseSend()
		_, err = js.Recv()
		requireCode(t, err, codes.InvalidArgument, "no join")
	})
}

func TestBadGroupRequestsAreInvalidAndCreateNothing(t *testing.T) {
	f := newGroupFixture(t)
	cases := []struct {
		name string
		spec *verityv1.GroupSpec
	}{
		{"an unknown strategy", &verityv1.GroupSpec{Stream: "order-1", Group: "g", Settings: &verityv1.GroupSettings{Strategy: 9}}},
		{"an unknown quarantine mode", &verityv1.GroupSpec{Stream: "order-1", Group: "g", Settings: &verityv1.GroupSettings{Quarantine: 5}}},
		{"a message timeout out of range", &verityv1.GroupSpec{Stream: "order-1", Group: "g", Settings: &verityv1.GroupSettings{MessageTimeout: &durationpb.Duration{Seconds: 1 << 40}}}},
		{"a field the server does not know", withUnknown(&verityv1.GroupSpec{Stream: "order-1", Group: "g"}, 50).(*verityv1.GroupSpec)},
		{"a filter on a stream group", &verityv1.GroupSpec{Stream: "order-1", Group: "g", Filter: &verityv1.Filter{Categories: []string{"order"}}}},
		{"an empty group name", &verityv1.GroupSpec{Stream: "order-1"}},
	}
	for _, c := range cases {
		t.Run(c.name+" is InvalidArgument", func(t *testing.T) {
			_, err := f.api.CreateGroup(t.Context(), &verityv1.CreateGroupRequest{Spec: c.spec})
			requireCode(t, err, codes.InvalidArgument, c.name)
		})
	}
	_, err := f.api.ReplayParked(t.Context(), &verityv1.ReplayParkedRequest{Stream: "order-1", Group: "g", Limit: -1})
	requireCode(t, err, codes.InvalidArgument, "a negative replay limit")
	list, err := f.api.ListGroups(t.Context(), &verityv1.ListGroupsRequest{})
	if err != nil || len(list.GetGroups()) != 0 {
		t.Fatalf("after bad requests the groups are %v, %v; want none", list, err)
	}
}

func TestGroupCallsWithoutGroupsAreUnavailable(t *testing.T) {
	f := newFixture(t, grpcapi.Options{})
	_, err := verityv1.NewGroupsClient(f.conn).ListGroups(t.Context(), &verityv1.ListGroupsRequest{})
	requireCode(t, err, codes.Unavailable, "list groups without groups")
}

func TestShutdownEndsGroupConsumers(t *testing.T) {
	f := newGroupFixture(t)
	if _, err := f.api.CreateGroup(t.Context(), &verityv1.CreateGroupRequest{Spec: &verityv1.GroupSpec{Stream: "order-1", Group: "g"}}); err != nil {
		t.Fatal(err)
	}
	js, err := f.join(t, t.Context(), "order-1", "g", 0)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := js.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	f.svc.Shutdown()
	select {
	case err := <-ended:
		requireCode(t, err, codes.Unavailable, "consumer at shutdown")
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer's call did not end at Shutdown")
	}
	_, err = f.join(t, t.Context(), "order-1", "g", 0)
	requireCode(t, err, codes.Unavailable, "join after shutdown")
}

func TestLeavingEndsTheCallAndFreesTheConsumer(t *testing.T) {
	f := newGroupFixture(t)
	if _, err := f.api.CreateGroup(t.Context(), &verityv1.CreateGroupRequest{Spec: &verityv1.GroupSpec{Stream: "order-1", Group: "g"}}); err != nil {
		t.Fatal(err)
	}
	js, err := f.join(t, t.Context(), "order-1", "g", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := js.Recv()
		if err == io.EOF {
			t.Fatal("the call ended without a status")
		}
		if err != nil {
			if status.Code(err) != codes.Aborted {
				t.Fatalf("leaving ended the call with %v, want Aborted (the consumer closed)", err)
			}
			break
		}
	}
	info, err := f.groups.GetGroup(t.Context(), "order-1", "g")
	if err != nil || len(info.Consumers) != 0 {
		t.Fatalf("after leaving the group has consumers %v (%v)", info.Consumers, err)
	}
}

// TestShutdownEndsACallWaitingForItsJoin: a client that opens JoinGroup and sends nothing
// does not hold the server at Shutdown.
func TestShutdownEndsACallWaitingForItsJoin(t *testing.T) {
	f := newGroupFixture(t)
	js, err := f.api.JoinGroup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Whether the call reaches the handler before Shutdown or after, it ends Unavailable.
	ended := make(chan error, 1)
	go func() {
		_, err := js.Recv()
		ended <- err
	}()
	f.svc.Shutdown()
	select {
	case err := <-ended:
		requireCode(t, err, codes.Unavailable, "call without a join at shutdown")
	case <-time.After(10 * time.Second):
		t.Fatal("the call waiting for its join did not end at Shutdown")
	}
}
