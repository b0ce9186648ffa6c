package kurrentdb

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	streamsv2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"

	"github.com/verity-dev/verity"
)

// These tests send what the official client never sends: malformed and oversized requests.

func proposed(typ string, data string) *streamsv1.AppendReq {
	return &streamsv1.AppendReq{Content: &streamsv1.AppendReq_ProposedMessage_{ProposedMessage: &streamsv1.AppendReq_ProposedMessage{
		Metadata: map[string]string{metaType: typ, metaContentType: "application/json"},
		Data:     []byte(data),
	}}}
}

func appendOptions(stream string) *streamsv1.AppendReq {
	return &streamsv1.AppendReq{Content: &streamsv1.AppendReq_Options_{Options: &streamsv1.AppendReq_Options{
		StreamIdentifier:       streamIdentifier(stream),
		ExpectedStreamRevision: &streamsv1.AppendReq_Options_Any{Any: &shared.Empty{}},
	}}}
}

// rawAppend sends msgs as one append and returns the answer, the error and its trailers.
func rawAppend(t *testing.T, cc *grpc.ClientConn, msgs ...*streamsv1.AppendReq) (*streamsv1.AppendResp, error, metadata.MD) {
	t.Helper()
	var trailer metadata.MD
	call, err := streamsv1.NewStreamsClient(cc).Append(testCtx(t), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("open append: %v", err)
	}
	for _, m := range msgs {
		if err := call.Send(m); err != nil {
			break // the server answered early; CloseAndRecv has its answer
		}
	}
	resp, err := call.CloseAndRecv()
	return resp, err, trailer
}

func TestMalformedAppendsAreInvalidAndChangeNothing(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.MaxAppendEvents = 3; o.MaxAppendSize = 1000 }))
	cc := e.conn(t)
	big := `"` + strings.Repeat("x", 1000) + `"`
	cases := []struct {
		name string
		msgs []*streamsv1.AppendReq
		want string
	}{
		{"no message at all", nil, "ended before its options"},
		{"events before the options", []*streamsv1.AppendReq{proposed("A", "{}")}, "must carry its options"},
		{"options twice", []*streamsv1.AppendReq{appendOptions("s-1"), appendOptions("s-1")}, "options once"},
		{"no stream name", []*streamsv1.AppendReq{appendOptions(""), proposed("A", "{}")}, "names no stream"},
		{"an event without a type", []*streamsv1.AppendReq{appendOptions("s-1"), proposed("", "{}")}, "has no type"},
		{"a malformed event id", []*streamsv1.AppendReq{appendOptions("s-1"), {Content: &streamsv1.AppendReq_ProposedMessage_{
			ProposedMessage: &streamsv1.AppendReq_ProposedMessage{Id: &shared.UUID{Value: &shared.UUID_String_{String_: "not-a-uuid"}},
				Metadata: map[string]string{metaType: "A"}}}}}, `"not-a-uuid" is not a UUID`},
		{"too many events", []*streamsv1.AppendReq{appendOptions("s-1"), proposed("A", "1"), proposed("A", "2"), proposed("A", "3"), proposed("A", "4")}, "more than 3 events"},
		{"too many bytes", []*streamsv1.AppendReq{appendOptions("s-1"), proposed("A", big)}, "more than 1000 bytes"},
		{"malformed JSON data", []*streamsv1.AppendReq{appendOptions("s-1"), proposed("A", "{nope")}, "not valid JSON"},
		{"two events to a metadata stream", []*streamsv1.AppendReq{appendOptions("$$s-1"), proposed("$metadata", "{}"), proposed("$metadata", "{}")}, "exactly one event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err, trailer := rawAppend(t, cc, tc.msgs...)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want InvalidArgument saying %q", err, tc.want)
			}
			if got := trailer.Get(TrailerErrorKind); len(got) != 1 || got[0] != "invalid" {
				t.Fatalf("trailer %s = %v, want invalid", TrailerErrorKind, got)
			}
		})
	}
	if evs, _ := e.store.ReadAll(testCtx(t), verity.ReadAllOptions{}); len(evs) != 0 {
		t.Fatalf("malformed appends wrote %d events", len(evs))
	}
}

func TestMalformedReadsAreInvalid(t *testing.T) {
	e := newEnv(t)
	cc := e.conn(t)
	all := &streamsv1.ReadReq_Options_All{All: &streamsv1.ReadReq_Options_AllOptions{AllOption: &streamsv1.ReadReq_Options_AllOptions_Start{Start: &shared.Empty{}}}}
	count := &streamsv1.ReadReq_Options_Count{Count: 10}
	cases := []struct {
		name string
		req  *streamsv1.ReadReq
		want string
	}{
		{"no options", &streamsv1.ReadReq{}, "no options"},
		{"neither stream nor $all", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{CountOption: count}}, "neither a stream nor $all"},
		{"no count", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{StreamOption: all}}, "neither a count"},
		{"a bad direction", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{StreamOption: all, CountOption: count, ReadDirection: 7}}, "read direction 7"},
		{"a backwards subscription", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{StreamOption: all, ReadDirection: streamsv1.ReadReq_Options_Backwards,
			CountOption: &streamsv1.ReadReq_Options_Subscription{Subscription: &streamsv1.ReadReq_Options_SubscriptionOptions{}}}}, "forwards only"},
		{"a bad regular expression", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{StreamOption: all, CountOption: count,
			FilterOption: &streamsv1.ReadReq_Options_Filter{Filter: &streamsv1.ReadReq_Options_FilterOptions{
				Filter: &streamsv1.ReadReq_Options_FilterOptions_EventType{EventType: &streamsv1.ReadReq_Options_FilterOptions_Expression{Regex: "(["}}}}}}, `"(["`},
		{"an empty filter", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{StreamOption: all, CountOption: count,
			FilterOption: &streamsv1.ReadReq_Options_Filter{Filter: &streamsv1.ReadReq_Options_FilterOptions{
				Filter: &streamsv1.ReadReq_Options_FilterOptions_StreamIdentifier{StreamIdentifier: &streamsv1.ReadReq_Options_FilterOptions_Expression{}}}}}}, "neither a regular expression nor prefixes"},
		{"a filter on a stream", &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{CountOption: count,
			StreamOption: &streamsv1.ReadReq_Options_Stream{Stream: &streamsv1.ReadReq_Options_StreamOptions{StreamIdentifier: streamIdentifier("s-1"),
				RevisionOption: &streamsv1.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}}}},
			FilterOption: &streamsv1.ReadReq_Options_Filter{Filter: &streamsv1.ReadReq_Options_FilterOptions{
				Filter: &streamsv1.ReadReq_Options_FilterOptions_EventType{EventType: &streamsv1.ReadReq_Options_FilterOptions_Expression{Prefix: []string{"A"}}}}}}}, "filters apply to $all only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call, err := streamsv1.NewStreamsClient(cc).Read(testCtx(t), tc.req)
			if err == nil {
				_, err = call.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want InvalidArgument saying %q", err, tc.want)
			}
		})
	}
}

func TestConflictAndDeletedTravelAsTrailers(t *testing.T) {
	e := newEnv(t)
	cc := e.conn(t)
	ctx := testCtx(t)
	if _, err := e.store.Append(ctx, "s-1", verity.Any(), verity.EventData{Type: "A"}, verity.EventData{Type: "A"}); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err := streamsv1.NewStreamsClient(cc).Delete(ctx, &streamsv1.DeleteReq{Options: &streamsv1.DeleteReq_Options{
		StreamIdentifier: streamIdentifier("s-1"), ExpectedStreamRevision: &streamsv1.DeleteReq_Options_Revision{Revision: 0},
	}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete err = %v", err)
	}
	for k, want := range map[string]string{trailerException: "wrong-expected-version", trailerExpectedVersion: "0", trailerActualVersion: "1", TrailerErrorKind: "conflict"} {
		if got := trailer.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("trailer %s = %v, want %s", k, got, want)
		}
	}
	if _, err := e.store.TombstoneStream(ctx, "s-1", verity.Any()); err != nil {
		t.Fatal(err)
	}
	_, err, trailer = rawAppend(t, cc, appendOptions("s-1"), proposed("A", "{}"))
	if status.Code(err) != codes.FailedPrecondition || trailer.Get(trailerException)[0] != "stream-deleted" || trailer.Get(trailerStreamName)[0] != "s-1" {
		t.Fatalf("append to a tombstone: %v, trailers %v", err, trailer)
	}
}

func TestAppendSessionRejectsBadSessions(t *testing.T) {
	e := newEnv(t)
	cc := e.conn(t)
	send := func(reqs ...*streamsv2.AppendRequest) error {
		call, err := streamsv2.NewStreamsServiceClient(cc).AppendSession(testCtx(t))
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		for _, r := range reqs {
			if err := call.Send(r); err != nil {
				break
			}
		}
		_, err = call.CloseAndRecv()
		return err
	}
	rec := func(name string) *streamsv2.AppendRecord {
		return &streamsv2.AppendRecord{Schema: &streamsv2.SchemaInfo{Name: name, Format: streamsv2.SchemaFormat_SCHEMA_FORMAT_BYTES},
			Properties: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}}
	}
	bad := int64(-3)
	badID := "nope"
	cases := []struct {
		name string
		reqs []*streamsv2.AppendRequest
		code codes.Code
	}{
		{"no request", nil, codes.FailedPrecondition},
		{"a stream twice", []*streamsv2.AppendRequest{{Stream: "a", Records: []*streamsv2.AppendRecord{rec("X")}}, {Stream: "a", Records: []*streamsv2.AppendRecord{rec("X")}}}, codes.Aborted},
		{"no stream name", []*streamsv2.AppendRequest{{Records: []*streamsv2.AppendRecord{rec("X")}}}, codes.InvalidArgument},
		{"a bad expected revision", []*streamsv2.AppendRequest{{Stream: "a", ExpectedRevision: &bad, Records: []*streamsv2.AppendRecord{rec("X")}}}, codes.InvalidArgument},
		{"a record without a schema name", []*streamsv2.AppendRequest{{Stream: "a", Records: []*streamsv2.AppendRecord{rec("")}}}, codes.InvalidArgument},
		{"a bad record id", []*streamsv2.AppendRequest{{Stream: "a", Records: []*streamsv2.AppendRecord{{RecordId: &badID, Schema: &streamsv2.SchemaInfo{Name: "X"}}}}}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := send(tc.reqs...); status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
		})
	}
	if evs, _ := e.store.ReadAll(testCtx(t), verity.ReadAllOptions{}); len(evs) != 0 {
		t.Fatalf("bad sessions wrote %d events", len(evs))
	}
}

// limitStore records the largest read the service asks of the store.
type limitStore struct {
	verity.Store
	mu       sync.Mutex
	maxLimit int
}

func (l *limitStore) note(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxLimit = max(l.maxLimit, n)
}

func (l *limitStore) ReadStream(ctx context.Context, s string, o verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	l.note(o.Limit)
	return l.Store.ReadStream(ctx, s, o)
}

func (l *limitStore) ReadAll(ctx context.Context, o verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	l.note(o.Limit)
	return l.Store.ReadAll(ctx, o)
}

func TestReadsAskTheStoreInBoundedBatches(t *testing.T) {
	var ls *limitStore
	e := newEnv(t, withOptions(func(o *Options) { o.MaxReadBatch = 5 }), withAccess(func(a *fakeAccess) {
		a.wrap = func(s verity.Store) verity.Store {
			if ls == nil {
				ls = &limitStore{Store: s}
			}
			return ls
		}
	}))
	ctx := testCtx(t)
	evs := make([]verity.EventData, 23)
	for i := range evs {
		evs[i] = verity.EventData{Type: "A"}
	}
	if _, err := e.store.Append(ctx, "s-1", verity.Any(), evs...); err != nil {
		t.Fatal(err)
	}
	cc := e.conn(t)
	for _, so := range []any{"s-1", "$all"} {
		opts := &streamsv1.ReadReq_Options{CountOption: &streamsv1.ReadReq_Options_Count{Count: ^uint64(0)}}
		if so == "$all" {
			opts.StreamOption = &streamsv1.ReadReq_Options_All{All: &streamsv1.ReadReq_Options_AllOptions{AllOption: &streamsv1.ReadReq_Options_AllOptions_Start{Start: &shared.Empty{}}}}
		} else {
			opts.StreamOption = &streamsv1.ReadReq_Options_Stream{Stream: &streamsv1.ReadReq_Options_StreamOptions{StreamIdentifier: streamIdentifier("s-1"),
				RevisionOption: &streamsv1.ReadReq_Options_StreamOptions_Start{Start: &shared.Empty{}}}}
		}
		call, err := streamsv1.NewStreamsClient(cc).Read(ctx, &streamsv1.ReadReq{Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			msg, err := call.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read %v: %v", so, err)
			}
			if ev := msg.GetEvent().GetEvent(); ev == nil || ev.StreamRevision != uint64(n) {
				t.Fatalf("read %v: message %d is %v", so, n, msg)
			}
			n++
		}
		if n != 23 {
			t.Fatalf("read %v: %d events, want 23", so, n)
		}
	}
	if ls.maxLimit != 5 {
		t.Fatalf("largest store read %d, want the batch of 5", ls.maxLimit)
	}
}

func TestStringUUIDsWhenAsked(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	res, err := e.store.Append(ctx, "s-1", verity.Any(), verity.EventData{Type: "A"})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := e.store.ReadStream(ctx, "s-1", verity.ReadStreamOptions{})
	call, err := streamsv1.NewStreamsClient(e.conn(t)).Read(ctx, &streamsv1.ReadReq{Options: &streamsv1.ReadReq_Options{
		CountOption: &streamsv1.ReadReq_Options_Count{Count: 1},
		StreamOption: &streamsv1.ReadReq_Options_Stream{Stream: &streamsv1.ReadReq_Options_StreamOptions{StreamIdentifier: streamIdentifier("s-1"),
			RevisionOption: &streamsv1.ReadReq_Options_StreamOptions_Revision{Revision: 0}}},
		UuidOption: &streamsv1.ReadReq_Options_UUIDOption{Content: &streamsv1.ReadReq_Options_UUIDOption_String_{String_: &shared.Empty{}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := call.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ev := msg.GetEvent().GetEvent()
	if ev.GetId().GetString_() != evs[0].ID.String() || ev.GetCommitPosition() != res.Position {
		t.Fatalf("event %v, want id %s", ev, evs[0].ID)
	}
}
