package httpapi

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/verity-dev/verity"
)

// The decoders read bytes straight off the network. Whatever they are given, they must not
// panic, and they either produce a request the store can be handed or fail with Invalid.
// Seeds live in testdata/fuzz/<FuzzName>/.

func requireInvalid(t *testing.T, err error, input any) {
	t.Helper()
	var e *verity.Error
	if !errors.As(err, &e) || e.Kind != verity.Invalid || e.Message == "" {
		t.Fatalf("input %q: error %v (%T), want an Invalid *verity.Error with a message", input, err, err)
	}
}

func FuzzDecodeAppend(f *testing.F) {
	f.Add([]byte(`{"type":"A","data":{"x":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeAppend(body)
		if err != nil {
			requireInvalid(t, err, body)
			return
		}
		if len(req.Events) == 0 {
			t.Fatalf("input %q: decoded with no events", body)
		}
		for i, ev := range req.Events {
			if ev.Type == "" {
				t.Fatalf("input %q: event %d has no type", body, i)
			}
		}
	})
}

func FuzzDecodeMultiAppend(f *testing.F) {
	f.Add([]byte(`{"appends":[{"stream":"a","events":[{"type":"A"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		appends, err := decodeMultiAppend(body)
		if err != nil {
			requireInvalid(t, err, body)
			return
		}
		if len(appends) == 0 {
			t.Fatalf("input %q: decoded with no appends", body)
		}
		seen := map[string]bool{}
		for _, a := range appends {
			if a.Stream == "" || seen[a.Stream] {
				t.Fatalf("input %q: stream %q empty or repeated", body, a.Stream)
			}
			seen[a.Stream] = true
			for _, ev := range a.Events {
				if ev.Type == "" {
					t.Fatalf("input %q: an event of %q has no type", body, a.Stream)
				}
			}
		}
	})
}

func FuzzDecodeMetadata(f *testing.F) {
	f.Add([]byte(`{"$maxCount":3,"$acl":{"$r":"$all"},"k":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		meta, err := decodeMetadata(body)
		if err != nil {
			requireInvalid(t, err, body)
			return
		}
		// What was accepted is written back as KurrentDB metadata the decoder accepts again.
		out, err := json.Marshal(meta)
		if err != nil {
			t.Fatalf("input %q: accepted metadata does not encode: %v", body, err)
		}
		again, err := decodeMetadata(out)
		if err != nil {
			t.Fatalf("input %q: re-encoded as %s, which is refused: %v", body, out, err)
		}
		if meta.MaxAge < 0 {
			t.Fatalf("input %q: accepted a negative max age %v", body, meta.MaxAge)
		}
		if again.MaxAge != meta.MaxAge || again.MaxCount != meta.MaxCount || len(again.Custom) != len(meta.Custom) {
			t.Fatalf("input %q: round trip changed %+v into %+v", body, meta, again)
		}
	})
}

func FuzzParseExpected(f *testing.F) {
	for _, s := range []string{"any", "no-stream", "stream-exists", "0", "42", "-1", "", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, err := parseExpected("append", "Expected-Revision header", s)
		if err != nil {
			requireInvalid(t, err, s)
			return
		}
		// The form errors are written in reads back as the same condition.
		b, _ := json.Marshal(expectedJSON(exp))
		again, err := expectedFromJSON("append", "expectedRevision", b)
		if err != nil || again != exp {
			t.Fatalf("input %q: %v written as %s reads back as %v (%v)", s, exp, b, again, err)
		}
	})
}

func FuzzReadAllQuery(f *testing.F) {
	for _, q := range []string{"", "from=3&direction=backwards&limit=10", "category=a&category=b&eventTypeRegex=%5EA", "fromTime=2030-01-02T03:04:05Z", "excludeSystem=1&streamRegex=("} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // net/url's business, answered 400 before any of ours runs
		}
		allowed := append([]string{pFrom, pDirection, pLimit, pFromTime, pCheckpointEvery}, filterParams...)
		check := func(err error) bool {
			if err != nil {
				requireInvalid(t, err, raw)
				return false
			}
			return true
		}
		if !check(checkParams("read", "", q, allowed...)) {
			return
		}
		_, err = parseDirection("read", "", q)
		check(err)
		_, err = parseFrom("read", "", q)
		check(err)
		if n, err := parseLimit("read", "", q, 100, 1000); check(err) && (n < 1 || n > 1000) {
			t.Fatalf("query %q: limit %d accepted", raw, n)
		}
		_, err = parseFromTime("read", q)
		check(err)
		_, err = parseCheckpointEvery("read", q)
		check(err)
		if flt, err := parseFilter("read", q); check(err) {
			if _, err := flt.Compile(); err != nil {
				t.Fatalf("query %q: accepted a filter that does not compile: %v", raw, err)
			}
		}
	})
}

func FuzzDecodeGroupSpec(f *testing.F) {
	f.Add([]byte(`{"strategy":"Pinned","messageTimeoutMs":5000,"filter":{"categories":["order"]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := decodeGroupSpec("create group", "$all", "g", body)
		if err != nil {
			requireInvalid(t, err, body)
			return
		}
		if spec.Stream != "$all" || spec.Group != "g" {
			t.Fatalf("input %q: the names changed to %q, %q", body, spec.Stream, spec.Group)
		}
		if _, err := spec.Filter.Compile(); err != nil {
			t.Fatalf("input %q: a filter that does not compile was accepted: %v", body, err)
		}
		// What the API writes back reads back the same.
		out, err := json.Marshal(groupBody{settingsJSON: settingsOut(spec.Settings), Filter: filterOut(spec.Filter)})
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeGroupSpec("create group", "$all", "g", out)
		if err != nil {
			t.Fatalf("input %q: the settings written back as %s do not decode: %v", body, out, err)
		}
		if again.Settings != spec.Settings {
			t.Fatalf("input %q: settings %+v came back as %+v", body, spec.Settings, again.Settings)
		}
	})
}
