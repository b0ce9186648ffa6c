package grpcapi

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"

	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeRequest decodes bytes from the network as each request the service takes, and
// runs the checks the service runs before anything reaches the store: none may panic, and
// an append the checks accept must encode and decode to the same events.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte{0x0a, 0x07, 'o', 'r', 'd', 'e', 'r', '-', '1'})
	s := New(nil, Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs := []proto.Message{
			&verityv1.AppendRequest{}, &verityv1.AppendMultiRequest{}, &verityv1.ReadStreamRequest{},
			&verityv1.ReadAllRequest{}, &verityv1.SubscribeRequest{}, &verityv1.SetStreamMetadataRequest{},
			&verityv1.DeleteStreamRequest{}, &verityv1.AppendSessionRequest{},
			&verityv1.CreateGroupRequest{}, &verityv1.ReplayParkedRequest{}, &verityv1.JoinGroupRequest{},
		}
		for _, m := range reqs {
			if proto.Unmarshal(b, m) != nil {
				continue
			}
			_ = checkKnown(m)
			switch r := m.(type) {
			case *verityv1.AppendRequest:
				_, _ = verityv1.ExpectedFromProto(r.GetExpected())
				evs, err := verityv1.EventsFromProto(r.GetEvents())
				if err != nil {
					continue
				}
				for i, e := range evs {
					back, err := verityv1.EventDataFromProto(verityv1.EventDataToProto(e))
					if err != nil || back.ID != e.ID || back.Type != e.Type || string(back.Data) != string(e.Data) {
						t.Fatalf("event %d %+v does not survive a round trip: %+v, %v", i, e, back, err)
					}
				}
			case *verityv1.AppendMultiRequest:
				for _, a := range r.GetAppends() {
					_, _ = verityv1.ExpectedFromProto(a.GetExpected())
					_, _ = verityv1.EventsFromProto(a.GetEvents())
				}
			case *verityv1.ReadStreamRequest:
				_, _ = verityv1.DirectionFromProto(r.GetDirection())
				_, _ = readLimit(r.GetLimit())
			case *verityv1.ReadAllRequest:
				_, _ = verityv1.DirectionFromProto(r.GetDirection())
				_, _ = readLimit(r.GetLimit())
				_, _ = verityv1.TimeFromProto("from_time", r.GetFromTime())
				_ = verityv1.FilterFromProto(r.GetFilter())
			case *verityv1.SubscribeRequest:
				_, _ = verityv1.TimeFromProto("from_time", r.GetFromTime())
				_ = verityv1.FilterFromProto(r.GetFilter())
			case *verityv1.SetStreamMetadataRequest:
				_, _ = verityv1.ExpectedFromProto(r.GetExpected())
				if meta, err := verityv1.MetadataFromProto(r.GetMetadata()); err == nil {
					if _, err := verityv1.MetadataFromProto(verityv1.MetadataToProto(meta)); err != nil {
						t.Fatalf("metadata %+v accepted once is refused after a round trip: %v", meta, err)
					}
				}
			case *verityv1.AppendSessionRequest:
				// What AppendSession does with a request short of the store.
				_ = knownErr(r)
				switch q := r.GetRequest().(type) {
				case *verityv1.AppendSessionRequest_Append:
					_, _ = verityv1.ExpectedFromProto(q.Append.GetExpected())
					_, _ = verityv1.EventsFromProto(q.Append.GetEvents())
				case *verityv1.AppendSessionRequest_AppendMulti:
					for _, a := range q.AppendMulti.GetAppends() {
						_, _ = verityv1.ExpectedFromProto(a.GetExpected())
						_, _ = verityv1.EventsFromProto(a.GetEvents())
					}
				}
			case *verityv1.CreateGroupRequest:
				_, _ = verityv1.GroupSpecFromProto(r.GetSpec())
			case *verityv1.JoinGroupRequest:
				// What JoinGroup does with a request short of the consumer.
				_ = requestName(r)
				switch q := r.GetRequest().(type) {
				case *verityv1.JoinGroupRequest_Ack_, *verityv1.JoinGroupRequest_Nack_:
					_ = s.ackOrNack(t.Context(), nopConsumer{}, r)
				case *verityv1.JoinGroupRequest_Join_:
					_ = q.Join.GetMaxInFlight()
				}
			case *verityv1.DeleteStreamRequest:
				_, _ = verityv1.ExpectedFromProto(r.GetExpected())
			}
		}
	})
}

// nopConsumer takes every ack and nack, so that the fuzzer reaches the checks before them.
type nopConsumer struct{}

func (nopConsumer) Recv(context.Context) (verity.GroupMessage, error) {
	return verity.GroupMessage{}, nil
}
func (nopConsumer) Ack(context.Context, ...uuid.UUID) error { return nil }
func (nopConsumer) Nack(context.Context, verity.NackAction, string, ...uuid.UUID) error {
	return nil
}
func (nopConsumer) Close() error { return nil }
