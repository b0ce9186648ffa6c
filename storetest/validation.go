package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

func testValidation(t *testing.T, s *suite) {
	lim := s.h.Limits
	good := func() verity.EventData { return event("OrderPlaced", 1) }
	// Each bad append is refused as Invalid, alone and as part of an AppendMulti.
	bad := []struct {
		name   string
		stream string
		events func() []verity.EventData
	}{
		{"an empty stream name", "", func() []verity.EventData { return []verity.EventData{good()} }},
		{"a stream name over the maximum length", strings.Repeat("s", lim.MaxStreamNameLength+1), func() []verity.EventData { return []verity.EventData{good()} }},
		{"an empty event type", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), ContentType: verity.ContentTypeJSON, Data: []byte(`{}`)}}
		}},
		{"an event type over the maximum length", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: strings.Repeat("T", lim.MaxEventTypeLength+1), Data: []byte(`{}`)}}
		}},
		{"malformed JSON data with the JSON content type", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: "OrderPlaced", ContentType: verity.ContentTypeJSON, Data: []byte(`{"total":`)}}
		}},
		{"malformed JSON data with no content type", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: "OrderPlaced", Data: []byte(`not json`)}}
		}},
		{"an event over the maximum size", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: "Blob", ContentType: verity.ContentTypeBinary, Data: make([]byte, lim.MaxEventSize+1)}}
		}},
		{"more events than the maximum", "order-1", func() []verity.EventData {
			return events("Tick", lim.MaxAppendEvents+1)
		}},
		{"one bad event after good ones", "order-1", func() []verity.EventData {
			return []verity.EventData{good(), good(), {ID: uuid.New(), Type: "OrderPlaced", Data: []byte(`{`)}}
		}},
	}
	for _, b := range bad {
		s.test(t, "an append with "+b.name+" is invalid and writes nothing", func(t *testing.T, st verity.Store) {
			_, err := st.Append(t.Context(), b.stream, verity.Any(), b.events()...)
			requireKind(t, err, verity.Invalid, "Append")
			if n := len(readAll(t, st, verity.Filter{})); n != 0 {
				t.Fatalf("the log holds %d events after an invalid append, want none", n)
			}
			if b.stream == "order-1" {
				requireStreamNotFound(t, st, b.stream)
			}
		})
		s.test(t, "a multi-stream append with "+b.name+" is invalid and writes nothing", func(t *testing.T, st verity.Store) {
			_, err := st.AppendMulti(t.Context(),
				verity.StreamAppend{Stream: "customer-1", Expected: verity.Any(), Events: []verity.EventData{good()}},
				verity.StreamAppend{Stream: b.stream, Expected: verity.Any(), Events: b.events()},
			)
			requireKind(t, err, verity.Invalid, "AppendMulti")
			if n := len(readAll(t, st, verity.Filter{})); n != 0 {
				t.Fatalf("the log holds %d events after an invalid append, want none", n)
			}
		})
	}

	// The other side of each limit.
	ok := []struct {
		name   string
		stream string
		events func() []verity.EventData
	}{
		{"a stream name of the maximum length", strings.Repeat("s", lim.MaxStreamNameLength), func() []verity.EventData { return []verity.EventData{good()} }},
		{"an event type of the maximum length", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: strings.Repeat("T", lim.MaxEventTypeLength), Data: []byte(`{}`)}}
		}},
		{"binary data that is not JSON", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: "Blob", ContentType: verity.ContentTypeBinary, Data: []byte{0xff, 0x00, '{'}}}
		}},
		{"another content type with data that is not JSON", "order-1", func() []verity.EventData {
			return []verity.EventData{{ID: uuid.New(), Type: "Note", ContentType: "text/plain", Data: []byte(`not json {`)}}
		}},
		{"the maximum number of events", "order-1", func() []verity.EventData {
			return events("Tick", lim.MaxAppendEvents)
		}},
	}
	for _, o := range ok {
		s.test(t, "an append with "+o.name+" is accepted", func(t *testing.T, st verity.Store) {
			evs := o.events()
			res := mustAppend(t, st, o.stream, verity.NoStream(), evs...)
			if want := uint64(len(evs) - 1); res.Revision != want {
				t.Fatalf("Append = %+v, want revision %d", res, want)
			}
			requireWritten(t, readStream(t, st, o.stream), evs, "the stream")
		})
	}

	s.test(t, "a negative read limit is invalid", func(t *testing.T, st verity.Store) {
		mustAppend(t, st, "order-1", verity.Any(), good())
		_, err := st.ReadStream(t.Context(), "order-1", verity.ReadStreamOptions{Limit: -1})
		requireKind(t, err, verity.Invalid, "ReadStream with limit -1")
		_, err = st.ReadAll(t.Context(), verity.ReadAllOptions{Limit: -1})
		requireKind(t, err, verity.Invalid, "ReadAll with limit -1")
	})

	// Bad stream names are refused by every operation that takes one.
	type call struct {
		name string
		do   func(ctx context.Context, st verity.Store) error
	}
	calls := []call{
		{"ReadStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.ReadStream(ctx, "", verity.ReadStreamOptions{})
			return err
		}},
		{"GetStreamMetadata", func(ctx context.Context, st verity.Store) error {
			_, err := st.GetStreamMetadata(ctx, "")
			return err
		}},
		{"SetStreamMetadata", func(ctx context.Context, st verity.Store) error {
			_, err := st.SetStreamMetadata(ctx, "", verity.Any(), verity.StreamMetadata{MaxCount: 1})
			return err
		}},
		{"DeleteStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.DeleteStream(ctx, "", verity.Any())
			return err
		}},
		{"TombstoneStream", func(ctx context.Context, st verity.Store) error {
			_, err := st.TombstoneStream(ctx, "", verity.Any())
			return err
		}},
	}
	for _, c := range calls {
		s.test(t, c.name+" of an empty stream name is invalid", func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.Any(), good())
			requireKind(t, c.do(t.Context(), st), verity.Invalid, c.name+`("")`)
			if n := len(readAll(t, st, verity.Filter{})); n != 1 {
				t.Fatalf("the log holds %d events after an invalid %s, want 1", n, c.name)
			}
		})
	}
}
