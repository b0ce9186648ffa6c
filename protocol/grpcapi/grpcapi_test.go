package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type adminAccess struct{ store verity.Store }

func (a adminAccess) Authenticate(context.Context, string) (auth.Principal, error) {
	return auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, nil
}
func (a adminAccess) Store(auth.Principal) verity.Store { return a.store }

// Groups: the store tests have no consumer groups (groups_test.go has its own access).
func (a adminAccess) Groups(auth.Principal) verity.Groups { return nil }

// fixture is an engine behind a Service on 127.0.0.1, and a raw gRPC connection to it:
// no Verity client in between, so the tests send what a foreign or broken client might.
type fixture struct {
	engine *engine.Engine
	svc    *grpcapi.Service
	conn   *grpc.ClientConn
	api    verityv1.StoreClient
}

func newFixture(t *testing.T, opts grpcapi.Options) *fixture {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := grpcapi.New(adminAccess{e}, opts)
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
		e.Close()
	})
	return &fixture{engine: e, svc: svc, conn: conn, api: verityv1.NewStoreClient(conn)}
}

func (f *fixture) append(t *testing.T, stream string, n int) {
	t.Helper()
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{ID: uuid.New(), Type: "Changed", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	if _, err := f.engine.Append(t.Context(), stream, verity.Any(), evs...); err != nil {
		t.Fatal(err)
	}
}

// requireCode fails unless err is a status of code c carrying a verity.v1.Error detail.
func requireCode(t *testing.T, err error, c codes.Code, what string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != c {
		t.Fatalf("%s: got %v, want code %v", what, err, c)
	}
	for _, d := range st.Details() {
		if _, ok := d.(*verityv1.Error); ok {
			return
		}
	}
	t.Fatalf("%s: status %v carries no verity.v1.Error detail", what, err)
}

// rawCodec sends bytes as they are, to send what no protobuf library would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

func withUnknown(m proto.Message, num protowire.Number) proto.Message {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	m.ProtoReflect().SetUnknown(b)
	return m
}

func goodEvent() *verityv1.EventData {
	id := uuid.New()
	return &verityv1.EventData{Id: id[:], Type: "OrderPlaced", Data: []byte(`{}`)}
}

func TestBadRequestsAreInvalidAndChangeNothing(t *testing.T) {
	f := newFixture(t, grpcapi.Options{})
	f.append(t, "order-1", 1)
	unknownEvent := withUnknown(goodEvent(), 99).(*verityv1.EventData)
	cases := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"an event id of 3 bytes", func(ctx context.Context) error {
			_, err := f.api.Append(ctx, &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{{Id: []byte{1, 2, 3}, Type: "T", Data: []byte(`{}`)}}})
			return err
		}},
		{"an unknown expected revision kind", func(ctx context.Context) error {
			_, err := f.api.Append(ctx, &verityv1.AppendRequest{Stream: "order-1", Expected: &verityv1.ExpectedRevision{Kind: 7}, Events: []*verityv1.EventData{goodEvent()}})
			return err
		}},
		{"an unknown expected revision kind in a multi-stream append", func(ctx context.Context) error {
			_, err := f.api.AppendMulti(ctx, &verityv1.AppendMultiRequest{Appends: []*verityv1.StreamAppend{
				{Stream: "order-2", Events: []*verityv1.EventData{goodEvent()}},
				{Stream: "order-3", Expected: &verityv1.ExpectedRevision{Kind: -1}, Events: []*verityv1.EventData{goodEvent()}},
			}})
			return err
		}},
		{"a bad event id in a multi-stream append", func(ctx context.Context) error {
			_, err := f.api.AppendMulti(ctx, &verityv1.AppendMultiRequest{Appends: []*verityv1.StreamAppend{
				{Stream: "order-2", Events: []*verityv1.EventData{goodEvent(), {Id: make([]byte, 17), Type: "T", Data: []byte(`{}`)}}},
			}})
			return err
		}},
		{"a field the server does not know", func(ctx context.Context) error {
			_, err := f.api.Append(ctx, withUnknown(&verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{goodEvent()}}, 42).(*verityv1.AppendRequest))
			return err
		}},
		{"a field the server does not know, inside an event", func(ctx context.Context) error {
			_, err := f.api.Append(ctx, &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{goodEvent(), unknownEvent}})
			return err
		}},
		{"bytes that are no protobuf message", func(ctx context.Context) error {
			garbage := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x'}
			var out []byte
			return f.conn.Invoke(ctx, "/verity.v1.Store/Append", &garbage, &out, grpc.ForceCodec(rawCodec{}))
		}},
		{"a stream name that is not UTF-8", func(ctx context.Context) error {
			// Field 1 (stream), length 2, bytes 0xff 0xfe.
			req := []byte{0x0a, 0x02, 0xff, 0xfe}
			var out []byte
			return f.conn.Invoke(ctx, "/verity.v1.Store/Append", &req, &out, grpc.ForceCodec(rawCodec{}))
		}},
		{"a negative max age in metadata", func(ctx context.Context) error {
			_, err := f.api.SetStreamMetadata(ctx, &verityv1.SetStreamMetadataRequest{Stream: "order-1", Metadata: &verityv1.StreamMetadata{MaxAge: durationpb.New(-time.Second)}})
			return err
		}},
		{"a custom metadata value that is not JSON", func(ctx context.Context) error {
			_, err := f.api.SetStreamMetadata(ctx, &verityv1.SetStreamMetadataRequest{Stream: "order-1", Metadata: &verityv1.StreamMetadata{Custom: map[string][]byte{"owner": []byte(`sales`)}}})
			return err
		}},
		{"an unknown expected revision kind in a delete", func(ctx context.Context) error {
			_, err := f.api.DeleteStream(ctx, &verityv1.DeleteStreamRequest{Stream: "order-1", Expected: &verityv1.ExpectedRevision{Kind: 9}})
			return err
		}},
		{"an unknown expected revision kind in a tombstone", func(ctx context.Context) error {
			_, err := f.api.TombstoneStream(ctx, &verityv1.DeleteStreamRequest{Stream: "order-1", Expected: &verityv1.ExpectedRevision{Kind: 9}})
			return err
		}},
		{"an unknown direction in a stream read", func(ctx context.Context) error {
			return drainRead(f.api.ReadStream(ctx, &verityv1.ReadStreamRequest{Stream: "order-1", Direction: 5}))
		}},
		{"a negative limit in a stream read", func(ctx context.Context) error {
			return drainRead(f.api.ReadStream(ctx, &verityv1.ReadStreamRequest{Stream: "order-1", Limit: -1}))
		}},
		{"an unknown direction in a log read", func(ctx context.Context) error {
			return drainRead(f.api.ReadAll(ctx, &verityv1.ReadAllRequest{Direction: 2}))
		}},
		{"a time out of range in a log read", func(ctx context.Context) error {
			return drainRead(f.api.ReadAll(ctx, &verityv1.ReadAllRequest{FromTime: &timestamppb.Timestamp{Seconds: 1 << 62}}))
		}},
		{"a field the server does not know in a log read's filter", func(ctx context.Context) error {
			return drainRead(f.api.ReadAll(ctx, &verityv1.ReadAllRequest{Filter: withUnknown(&verityv1.Filter{Categories: []string{"order"}}, 20).(*verityv1.Filter)}))
		}},
		{"a negative checkpoint interval in a subscription", func(ctx context.Context) error {
			return firstSubscribeErr(f.api.Subscribe(ctx, &verityv1.SubscribeRequest{CheckpointEvery: -1}))
		}},
		{"a nanosecond count out of range in a subscription's start time", func(ctx context.Context) error {
			return firstSubscribeErr(f.api.Subscribe(ctx, &verityv1.SubscribeRequest{FromTime: &timestamppb.Timestamp{Nanos: 2e9}}))
		}},
		{"a bad regexp in a subscription's filter", func(ctx context.Context) error {
			return firstSubscribeErr(f.api.Subscribe(ctx, &verityv1.SubscribeRequest{Filter: &verityv1.Filter{StreamRegexp: "("}}))
		}},
	}
	for _, c := range cases {
		t.Run(c.name+" is InvalidArgument", func(t *testing.T) {
			before, err := f.engine.ReadAll(t.Context(), verity.ReadAllOptions{})
			if err != nil {
				t.Fatal(err)
			}
			requireCode(t, c.call(t.Context()), codes.InvalidArgument, c.name)
			after, err := f.engine.ReadAll(t.Context(), verity.ReadAllOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("the log held %d events before the bad request and %d after", len(before), len(after))
			}
		})
	}
}

func drainRead(rs grpc.ServerStreamingClient[verityv1.ReadResponse], err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := rs.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func firstSubscribeErr(rs grpc.ServerStreamingClient[verityv1.SubscribeResponse], err error) error {
	if err != nil {
		return err
	}
	msg, err := rs.Recv()
	if err == nil {
		return fmt.Errorf("the subscription was accepted: first message %v", msg)
	}
	return err
}

// TestReadsArePagedAndBatched reads through pages and batches smaller than the read and
// checks that the result is exactly what the engine returns in one call.
func TestReadsArePagedAndBatched(t *testing.T) {
	f := newFixture(t, grpcapi.Options{ReadPageSize: 3, ReadBatchBytes: 200})
	for i := 0; i < 4; i++ {
		f.append(t, fmt.Sprintf("order-%d", i%2), 5)
	}
	streamReads := []verity.ReadStreamOptions{
		{},
		{Limit: 7},
		{From: 2, Limit: 6},
		{Direction: verity.Backwards, FromEnd: true},
		{Direction: verity.Backwards, FromEnd: true, Limit: 4},
		{Direction: verity.Backwards, From: 5, Limit: 100},
	}
	for _, o := range streamReads {
		want, err := f.engine.ReadStream(t.Context(), "order-1", o)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := f.api.ReadStream(t.Context(), &verityv1.ReadStreamRequest{
			Stream: "order-1", Direction: verityv1.DirectionToProto(o.Direction), From: o.From, FromEnd: o.FromEnd, Limit: int64(o.Limit),
		})
		if err != nil {
			t.Fatal(err)
		}
		got, msgs := collect(t, rs)
		requireSame(t, got, want, fmt.Sprintf("ReadStream(%+v)", o))
		if len(want) > 3 && msgs < 2 {
			t.Errorf("ReadStream(%+v): %d events came in %d message; want batches of at most 200 bytes", o, len(got), msgs)
		}
	}
	allReads := []verity.ReadAllOptions{
		{},
		{Limit: 11},
		{From: 4, Limit: 9},
		{Direction: verity.Backwards, FromEnd: true},
		{Direction: verity.Backwards, From: 17, Limit: 8},
		{Filter: verity.Filter{StreamPrefixes: []string{"order-0"}}, Limit: 8},
	}
	for _, o := range allReads {
		want, err := f.engine.ReadAll(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := f.api.ReadAll(t.Context(), &verityv1.ReadAllRequest{
			Direction: verityv1.DirectionToProto(o.Direction), From: o.From, FromEnd: o.FromEnd, Limit: int64(o.Limit),
			Filter: verityv1.FilterToProto(o.Filter),
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := collect(t, rs)
		requireSame(t, got, want, fmt.Sprintf("ReadAll(%+v)", o))
	}
}

func collect(t *testing.T, rs grpc.ServerStreamingClient[verityv1.ReadResponse]) ([]verity.RecordedEvent, int) {
	t.Helper()
	var out []verity.RecordedEvent
	msgs := 0
	for {
		msg, err := rs.Recv()
		if err == io.EOF {
			return out, msgs
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		for _, p := range msg.GetEvents() {
			e, err := verityv1.RecordedEventFromProto(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
}

func requireSame(t *testing.T, got, want []verity.RecordedEvent, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Position != w.Position || g.Revision != w.Revision || g.Stream != w.Stream || !g.Created.Equal(w.Created) || string(g.Data) != string(w.Data) {
			t.Fatalf("%s: event %d is %+v, want %+v", what, i, g, w)
		}
	}
}

func TestSubscriptionsPerConnectionAreLimited(t *testing.T) {
	f := newFixture(t, grpcapi.Options{MaxSubscriptionsPerConnection: 2})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	open := func() (grpc.ServerStreamingClient[verityv1.SubscribeResponse], error) {
		rs, err := f.api.Subscribe(ctx, &verityv1.SubscribeRequest{})
		if err != nil {
			return nil, err
		}
		msg, err := rs.Recv()
		if err != nil {
			return nil, err
		}
		if msg.GetConfirmation() == nil {
			t.Fatalf("the first message is %v, want the confirmation", msg)
		}
		return rs, nil
	}
	for i := 0; i < 2; i++ {
		if _, err := open(); err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
	}
	_, err := open()
	requireCode(t, err, codes.ResourceExhausted, "a third subscription on the connection")
	if !errors.Is(verityv1.ErrorFromStatus(err), verity.ErrResourceExhausted) {
		t.Fatalf("the client side of %v is not ResourceExhausted", err)
	}

	// Another connection has its own allowance.
	other, err := grpc.NewClient(f.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rs, err := verityv1.NewStoreClient(other).Subscribe(ctx, &verityv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := rs.Recv(); err != nil || msg.GetConfirmation() == nil {
		t.Fatalf("a subscription on another connection: %v, %v", msg, err)
	}

	// Ending a subscription frees its place, once the server has seen it end.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sctx, scancel := context.WithCancel(t.Context())
		rs, err := f.api.Subscribe(sctx, &verityv1.SubscribeRequest{})
		if err == nil {
			_, err = rs.Recv()
		}
		scancel()
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a subscription after the others ended: %v", err)
		}
		time.Sleep(time.Millisecond) // polling a condition the server reaches on its own
	}
}

func TestShutdownEndsSubscriptionsWithUnavailable(t *testing.T) {
	f := newFixture(t, grpcapi.Options{})
	f.append(t, "order-1", 2)
	rs, err := f.api.Subscribe(t.Context(), &verityv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := rs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetCaughtUp() != nil {
			break
		}
	}
	f.svc.Shutdown()
	_, err = rs.Recv()
	requireCode(t, err, codes.Unavailable, "Recv after Shutdown")
	requireCode(t, firstSubscribeErr(f.api.Subscribe(t.Context(), &verityv1.SubscribeRequest{})), codes.Unavailable, "Subscribe after Shutdown")
	// Other calls still work.
	if _, err := f.api.Append(t.Context(), &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{goodEvent()}}); err != nil {
		t.Fatalf("Append after Shutdown: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		opts  grpcapi.Options
		field string
	}{
		{grpcapi.Options{MaxSubscriptionsPerConnection: -1}, "MaxSubscriptionsPerConnection"},
		{grpcapi.Options{ReadPageSize: -1}, "ReadPageSize"},
		{grpcapi.Options{ReadBatchBytes: -1}, "ReadBatchBytes"},
	}
	for _, c := range cases {
		err := c.opts.Validate()
		if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Validate(%+v) = %v, want Invalid naming %s", c.opts, err, c.field)
		}
	}
	if err := (grpcapi.Options{}).Validate(); err != nil {
		t.Errorf("the zero Options: %v", err)
	}
}

// TestMissingMessagesMeanTheirZeroValue: a request may leave out any nested message (a
// foreign client's encoder does so for empty ones); the service reads it as the zero
// value and does not crash.
func TestMissingMessagesMeanTheirZeroValue(t *testing.T) {
	f := newFixture(t, grpcapi.Options{})
	if _, err := f.api.SetStreamMetadata(t.Context(), &verityv1.SetStreamMetadataRequest{Stream: "order-1"}); err != nil {
		t.Fatalf("SetStreamMetadata without metadata: %v", err)
	}
	got, err := f.api.GetStreamMetadata(t.Context(), &verityv1.GetStreamMetadataRequest{Stream: "order-1"})
	if err != nil {
		t.Fatal(err)
	}
	if m := got.GetMetadata(); m.GetMaxCount() != 0 || m.GetAcl() != nil || m.TruncateBefore != nil || len(m.GetCustom()) != 0 {
		t.Fatalf("metadata set from nothing reads back as %v", m)
	}
	res, err := f.api.Append(t.Context(), &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{{Type: "T", Data: []byte(`{}`)}}})
	if err != nil || res.GetRevision() != 0 {
		t.Fatalf("Append without an expected revision or an event id = %v, %v; want revision 0", res, err)
	}
	if _, err := f.api.Append(t.Context(), &verityv1.AppendRequest{Stream: "order-1", Events: []*verityv1.EventData{nil}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Append of an empty event: %v, want InvalidArgument (no type)", err)
	}
}
