package kurrentdb

import (
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	streamsv2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"

	"github.com/verity-dev/verity"
)

// The decoders below read what a client sent, after gRPC's protobuf decoding: they must
// never panic, and what they accept must be something the store can be asked.

func FuzzParseRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var req streamsv1.ReadReq
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		p, err := parseRead(&req)
		if err != nil {
			if verity.KindOf(err) != verity.Invalid {
				t.Fatalf("parseRead error of kind %v: %v", verity.KindOf(err), err)
			}
			return
		}
		if p.stream != "" && !p.filter.IsZero() {
			t.Fatalf("a stream read with a filter was accepted: %+v", p)
		}
		if _, err := p.filter.Compile(); err != nil {
			t.Fatalf("accepted a filter that does not compile: %v", err)
		}
		if p.subscribe && p.backwards {
			t.Fatal("accepted a backwards subscription")
		}
		if !p.filter.IsZero() && p.checkpointEvery <= 0 {
			t.Fatalf("filtered read with checkpoint interval %d", p.checkpointEvery)
		}
	})
}

func FuzzEventFromProposed(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var pm streamsv1.AppendReq_ProposedMessage
		if proto.Unmarshal(b, &pm) != nil {
			return
		}
		ev, err := eventFromProposed("append", &pm)
		if err != nil {
			if verity.KindOf(err) != verity.Invalid {
				t.Fatalf("error of kind %v: %v", verity.KindOf(err), err)
			}
			return
		}
		if ev.Type == "" || ev.ContentType == "" {
			t.Fatalf("accepted an event without type or content type: %+v", ev)
		}
	})
}

func FuzzEventFromRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec streamsv2.AppendRecord
		if proto.Unmarshal(b, &rec) != nil {
			return
		}
		ev, err := eventFromRecord("append session", "s-1", &rec)
		if err != nil {
			if verity.KindOf(err) != verity.Invalid {
				t.Fatalf("error of kind %v: %v", verity.KindOf(err), err)
			}
			return
		}
		var md map[string]any
		if err := json.Unmarshal(ev.Metadata, &md); err != nil {
			t.Fatalf("metadata %q is not a JSON object: %v", ev.Metadata, err)
		}
		if md[metaSchemaName] != ev.Type || ev.Type == "" {
			t.Fatalf("metadata %v does not name type %q", md, ev.Type)
		}
	})
}

// FuzzMetadataJSON checks that metadata the service accepts reads back the same after a
// trip through the KurrentDB form it sends.
func FuzzMetadataJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseKurrentMetadata(b)
		if err != nil {
			return
		}
		out, err := kurrentMetadataJSON(m)
		if err != nil {
			t.Fatalf("cannot write accepted metadata %s: %v", b, err)
		}
		back, err := parseKurrentMetadata(out)
		if err != nil {
			t.Fatalf("cannot read back %s (from %s): %v", out, b, err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(back)) {
			t.Fatalf("round trip of %s: %+v, then %+v", b, m, back)
		}
	})
}

// normalize drops the differences JSON cannot keep: empty role lists, custom values'
// formatting.
func normalize(m verity.StreamMetadata) verity.StreamMetadata {
	if m.ACL != nil {
		a := *m.ACL
		for _, l := range []*[]string{&a.Read, &a.Write, &a.Delete, &a.MetaRead, &a.MetaWrite} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		m.ACL = &a
	}
	if m.Custom != nil {
		c := make(map[string]json.RawMessage, len(m.Custom))
		for k, v := range m.Custom {
			var x any
			_ = json.Unmarshal(v, &x)
			c[k], _ = json.Marshal(x)
		}
		m.Custom = c
	}
	return m
}
