package verityv1_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// FuzzErrorFromStatus decodes what a server (or anything in between) sent as an error
// status: the client must rebuild an error, never panic, and only of a kind that exists.
func FuzzErrorFromStatus(f *testing.F) {
	exp := verity.Exact(1)
	for _, err := range []error{
		verity.WrongRevision("append", "order-1", exp, verity.StreamState{Exists: true, Revision: 4}),
		verity.Errorf(verity.NotFound, "read", "stream %q does not exist", "order-1"),
	} {
		b, _ := proto.Marshal(verityv1.Status(err).Proto())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p spb.Status
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		st := status.FromProto(&p)
		err := verityv1.ErrorFromStatus(st.Err())
		if st.Err() == nil {
			if err != nil {
				t.Fatalf("an OK status became %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("status %v became no error", st)
		}
		if k := verity.KindOf(err); k > verity.ResourceExhausted {
			t.Fatalf("status %v became an error of unknown kind %d", st, k)
		}
		_ = err.Error()
	})
}

// FuzzRecordedEventFromProto decodes an event a server sent: either an error or an event
// that survives being encoded again.
func FuzzRecordedEventFromProto(f *testing.F) {
	ev := &verity.RecordedEvent{Type: "OrderPlaced", ContentType: verity.ContentTypeJSON, Data: []byte(`{"n":1}`), Stream: "order-1", Revision: 2, Position: 9}
	b, _ := proto.Marshal(verityv1.RecordedEventToProto(ev))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p verityv1.RecordedEvent
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		e, err := verityv1.RecordedEventFromProto(&p)
		if err != nil {
			return
		}
		again, err := verityv1.RecordedEventFromProto(verityv1.RecordedEventToProto(&e))
		if err != nil {
			t.Fatalf("an event read from the wire does not read back: %v", err)
		}
		if again.ID != e.ID || again.Type != e.Type || !bytes.Equal(again.Data, e.Data) || !again.Created.Equal(e.Created) || again.Position != e.Position {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}

// FuzzGroupSpecFromProto decodes the spec of a group a client sent: either an error or a
// spec that survives being encoded again unchanged.
func FuzzGroupSpecFromProto(f *testing.F) {
	b, _ := proto.Marshal(verityv1.GroupSpecToProto(fullSpec()))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p verityv1.GroupSpec
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		s, err := verityv1.GroupSpecFromProto(&p)
		if err != nil {
			return
		}
		again, err := verityv1.GroupSpecFromProto(verityv1.GroupSpecToProto(s))
		if err != nil {
			t.Fatalf("a spec read from the wire does not read back: %v", err)
		}
		if !reflect.DeepEqual(normSpec(again), normSpec(s)) {
			t.Fatalf("round trip changed %+v into %+v", s, again)
		}
	})
}

// FuzzGroupInfoFromProto decodes the description of a group a server sent, as
// FuzzGroupSpecFromProto does a spec.
func FuzzGroupInfoFromProto(f *testing.F) {
	b, _ := proto.Marshal(verityv1.GroupInfoToProto(fullInfo()))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p verityv1.GroupInfo
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		g, err := verityv1.GroupInfoFromProto(&p)
		if err != nil {
			return
		}
		again, err := verityv1.GroupInfoFromProto(verityv1.GroupInfoToProto(g))
		if err != nil {
			t.Fatalf("a group description read from the wire does not read back: %v", err)
		}
		if !reflect.DeepEqual(normInfo(again), normInfo(g)) {
			t.Fatalf("round trip changed %+v into %+v", g, again)
		}
	})
}

// FuzzJoinGroupRequest decodes what a consumer sends and reads it as the server does: no
// panic, and ids and actions that read must survive a round trip.
func FuzzJoinGroupRequest(f *testing.F) {
	for _, m := range []*verityv1.JoinGroupRequest{
		{Request: &verityv1.JoinGroupRequest_Join_{Join: &verityv1.JoinGroupRequest_Join{Stream: "order-1", Group: "billing", MaxInFlight: 5}}},
		{Request: &verityv1.JoinGroupRequest_Ack_{Ack: &verityv1.JoinGroupRequest_Ack{Id: 1, EventIds: [][]byte{make([]byte, 16)}}}},
		{Request: &verityv1.JoinGroupRequest_Nack_{Nack: &verityv1.JoinGroupRequest_Nack{Id: 2, EventIds: [][]byte{make([]byte, 16)}, Action: verityv1.NackAction_NACK_ACTION_PARK, Reason: "bad"}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p verityv1.JoinGroupRequest
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		var raw [][]byte
		switch r := p.GetRequest().(type) {
		case *verityv1.JoinGroupRequest_Ack_:
			raw = r.Ack.GetEventIds()
		case *verityv1.JoinGroupRequest_Nack_:
			raw = r.Nack.GetEventIds()
			if a, err := verityv1.NackActionFromProto(r.Nack.GetAction()); err == nil {
				if back, err := verityv1.NackActionFromProto(verityv1.NackActionToProto(a)); err != nil || back != a {
					t.Fatalf("nack action %v does not survive a round trip: %v, %v", a, back, err)
				}
			}
		}
		ids, err := verityv1.EventIDsFromProto(raw)
		if err != nil {
			return
		}
		back, err := verityv1.EventIDsFromProto(verityv1.EventIDsToProto(ids))
		if err != nil || !reflect.DeepEqual(back, ids) {
			t.Fatalf("ids %v do not survive a round trip: %v, %v", ids, back, err)
		}
	})
}

// FuzzGroupMessageFromProto decodes an event a server delivered to a consumer.
func FuzzGroupMessageFromProto(f *testing.F) {
	m := verity.GroupMessage{Event: verity.RecordedEvent{Type: "OrderPlaced", Data: []byte(`{}`), Stream: "order-1", Position: 3}, RetryCount: 2}
	b, _ := proto.Marshal(verityv1.GroupMessageToProto(&m))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p verityv1.JoinGroupResponse_Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		m, err := verityv1.GroupMessageFromProto(&p)
		if err != nil {
			return
		}
		if m.RetryCount < 0 {
			t.Fatalf("retry count %d read as negative", m.RetryCount)
		}
		again, err := verityv1.GroupMessageFromProto(verityv1.GroupMessageToProto(&m))
		if err != nil || again.RetryCount != m.RetryCount || again.Event.ID != m.Event.ID {
			t.Fatalf("round trip changed %+v into %+v (%v)", m, again, err)
		}
	})
}
