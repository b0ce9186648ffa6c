package verityv1_test

import (
	"bytes"
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
