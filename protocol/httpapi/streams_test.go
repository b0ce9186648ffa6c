package httpapi

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestAppendShapes(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct {
		name, body string
		wantRev    uint64
		wantTypes  []string
	}{
		{"one event object appends one event", `{"type":"A","data":{"x":1}}`, 0, []string{"A"}},
		{"a JSON array appends every event in order", `[{"type":"A"},{"type":"B"}]`, 1, []string{"A", "B"}},
		{"an events wrapper appends every event in order", `{"events":[{"type":"A"},{"type":"B"},{"type":"C"}]}`, 2, []string{"A", "B", "C"}},
		{"a wrapper may carry the expected revision", `{"expectedRevision":"no-stream","events":[{"type":"A"}]}`, 0, []string{"A"}},
		{"a single event may carry the expected revision", `{"type":"A","expectedRevision":"no-stream"}`, 0, []string{"A"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			stream := "shape-" + itoa(i)
			var res appendResultOut
			e.must(http.StatusCreated, &res, "POST", "/streams/"+stream, tt.body)
			if res.Revision != tt.wantRev || res.Position == 0 {
				t.Fatalf("result %+v, want revision %d and a position", res, tt.wantRev)
			}
			if got := e.read("/streams/" + stream).types(); !slices.Equal(got, tt.wantTypes) {
				t.Fatalf("types %v, want %v", got, tt.wantTypes)
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	const id = "0b3f2c1e-8d2a-4c6e-9f51-3a7d2e4b5c60"
	bin := []byte{0, 1, 2, 0xff}
	body := `[
		{"id":"` + id + `","type":"OrderPlaced","data":{"total": 12.5},"metadata":{"correlationId":"c-1"}},
		{"type":"Blob","contentType":"application/octet-stream","dataBase64":"` + base64.StdEncoding.EncodeToString(bin) + `"},
		{"type":"Empty"},
		{"type":"Text","contentType":"text/plain","dataBase64":"aGk=","metadataBase64":"AAE="}
	]`
	var res appendResultOut
	e.must(http.StatusCreated, &res, "POST", "/streams/order-1", body)
	if res.Revision != 3 || res.Position != 4 {
		t.Fatalf("append result %+v, want revision 3 position 4", res)
	}
	p := e.read("/streams/order-1")
	if len(p.Events) != 4 {
		t.Fatalf("read %d events, want 4", len(p.Events))
	}
	ev := p.Events[0]
	if ev.ID != id || ev.Stream != "order-1" || ev.Type != "OrderPlaced" || ev.ContentType != "application/json" ||
		string(ev.Data) != `{"total":12.5}` || string(ev.Metadata) != `{"correlationId":"c-1"}` || ev.Position != 1 {
		t.Fatalf("first event %+v", ev)
	}
	if ct, err := time.Parse(time.RFC3339Nano, ev.Created); err != nil || !ct.Equal(e.clock.Now()) {
		t.Fatalf("created %q (%v), want %v", ev.Created, err, e.clock.Now())
	}
	if b, _ := base64.StdEncoding.DecodeString(p.Events[1].DataBase64); string(b) != string(bin) || p.Events[1].Data != nil {
		t.Fatalf("binary event %+v, want dataBase64 of %v", p.Events[1], bin)
	}
	if p.Events[2].Data != nil || p.Events[2].DataBase64 != "" {
		t.Fatalf("empty event %+v has data", p.Events[2])
	}
	if p.Events[3].DataBase64 != "aGk=" || p.Events[3].MetadataBase64 != "AAE=" {
		t.Fatalf("text event %+v", p.Events[3])
	}

	t.Run("an append retried with the same id returns the original result and writes nothing", func(t *testing.T) {
		e := e.with(t)
		var again appendResultOut
		e.must(http.StatusCreated, &again, "POST", "/streams/idem", `{"id":"`+id+`","type":"A"}`)
		var retry appendResultOut
		e.must(http.StatusCreated, &retry, "POST", "/streams/idem", `{"id":"`+id+`","type":"A"}`)
		if retry != again {
			t.Fatalf("retry %+v, original %+v", retry, again)
		}
		if n := len(e.read("/streams/idem").Events); n != 1 {
			t.Fatalf("%d events after retry, want 1", n)
		}
	})
}

func TestExpectedRevision(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("exp-1", "A", 3) // revisions 0..2
	tests := []struct {
		name    string
		stream  string
		header  string // Expected-Revision; "" sends none
		body    string
		status  int
		wantMsg string
	}{
		{"no-stream holds for a new stream", "exp-new", "no-stream", `{"type":"A"}`, 201, ""},
		{"no-stream fails for a stream with events", "exp-1", "no-stream", `{"type":"A"}`, 409, "expected revision no stream, actual 2"},
		{"an exact revision that holds", "exp-1", "2", `{"type":"A"}`, 201, ""},
		{"an exact revision that is stale", "exp-1", "2", `{"type":"A"}`, 409, "actual 3"},
		{"stream-exists holds for a stream with events", "exp-1", "stream-exists", `{"type":"A"}`, 201, ""},
		{"stream-exists fails for a new stream", "exp-none", "stream-exists", `{"type":"A"}`, 409, "actual no stream"},
		{"any always holds", "exp-1", "any", `{"type":"A"}`, 201, ""},
		{"the body's revision as a number", "exp-1", "", `{"expectedRevision":5,"events":[{"type":"A"}]}`, 201, ""},
		{"the body's revision as a string", "exp-1", "", `{"expectedRevision":"6","events":[{"type":"A"}]}`, 201, ""},
		{"header and body agreeing", "exp-1", "7", `{"expectedRevision":7,"events":[{"type":"A"}]}`, 201, ""},
		{"header and body disagreeing", "exp-1", "8", `{"expectedRevision":"any","events":[{"type":"A"}]}`, 400, "disagree"},
		{"a header that is not a revision", "exp-1", "abc", `{"type":"A"}`, 400, `expected-revision header "abc": want any, no-stream, stream-exists or a revision number`},
		{"a negative header", "exp-1", "-1", `{"type":"A"}`, 400, `"-1"`},
		{"a body revision that is not one", "exp-1", "", `{"expectedRevision":true,"events":[{"type":"A"}]}`, 400, "want any, no-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var h []string
			if tt.header != "" {
				h = []string{"Expected-Revision", tt.header}
			}
			before := len(e.read("/streams/$all?limit=1000").Events)
			r := e.do("POST", "/streams/"+tt.stream, tt.body, h...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			after := len(e.read("/streams/$all?limit=1000").Events)
			if tt.status != 201 {
				got := r.errorOf(t)
				if !strings.Contains(strings.ToLower(got.Message), strings.ToLower(tt.wantMsg)) {
					t.Fatalf("message %q does not say %q", got.Message, tt.wantMsg)
				}
				if after != before {
					t.Fatalf("a refused append changed the log: %d events, then %d", before, after)
				}
			}
			if tt.status == 409 {
				got := r.errorOf(t)
				if got.Kind != "conflict" || got.Stream != tt.stream || got.Expected == nil || got.Actual == nil {
					t.Fatalf("conflict error %+v lacks kind, stream, expected or actual", got)
				}
			}
		})
	}
	t.Run("a conflict reports expected and actual in the API's terms", func(t *testing.T) {
		e := e.with(t)
		r := e.do("POST", "/streams/exp-1", `{"type":"A"}`, "Expected-Revision", "no-stream")
		got := r.errorOf(t)
		if got.Expected != "no-stream" || got.Actual != float64(8) {
			t.Fatalf("expected %v actual %v, want no-stream and 8", got.Expected, got.Actual)
		}
	})
}

func TestAppendBadInput(t *testing.T) {
	e := newEnv(t, Options{MaxBodyBytes: 1 << 10})
	big := `{"type":"A","data":"` + strings.Repeat("x", 2<<10) + `"}`
	tests := []struct {
		name, path, body string
		headers          []string
		status           int
		kind, msg        string
	}{
		{"an empty body", "/streams/bad-1", " ", nil, 400, "invalid", "empty"},
		{"malformed JSON", "/streams/bad-1", `{"type":`, nil, 400, "invalid", "ends in the middle"},
		{"a syntax error", "/streams/bad-1", `{"type" "A"}`, nil, 400, "invalid", "not valid JSON"},
		{"an unknown field", "/streams/bad-1", `{"type":"A","dat":{}}`, nil, 400, "invalid", `unknown field "dat"`},
		{"an unknown field in a batch", "/streams/bad-1", `[{"type":"A"},{"type":"B","eventId":"x"}]`, nil, 400, "invalid", `unknown field "eventId"`},
		{"a number body", "/streams/bad-1", `42`, nil, 400, "invalid", "not a number"},
		{"two JSON values", "/streams/bad-1", `{"type":"A"} {"type":"B"}`, nil, 400, "invalid", "more after its JSON value"},
		{"an empty batch", "/streams/bad-1", `[]`, nil, 400, "invalid", "no events"},
		{"an empty events list", "/streams/bad-1", `{"events":[]}`, nil, 400, "invalid", "no events"},
		{"events and event fields mixed", "/streams/bad-1", `{"type":"A","events":[{"type":"B"}]}`, nil, 400, "invalid", `has "events" and also`},
		{"a missing type", "/streams/bad-1", `[{"type":"A"},{"data":{}}]`, nil, 400, "invalid", `event 1: "type" is missing`},
		{"a wrong field type", "/streams/bad-1", `{"type":5}`, nil, 400, "invalid", `field "type" is a JSON number; want a string`},
		{"a bad id", "/streams/bad-1", `{"type":"A","id":"nope"}`, nil, 400, "invalid", `id "nope" is not a UUID`},
		{"data and dataBase64 together", "/streams/bad-1", `{"type":"A","data":{},"dataBase64":"AA=="}`, nil, 400, "invalid", "both"},
		{"bad base64", "/streams/bad-1", `{"type":"A","dataBase64":"!!"}`, nil, 400, "invalid", "base64"},
		{"JSON data with a binary content type", "/streams/bad-1", `{"type":"A","contentType":"text/plain","data":"hi"}`, nil, 400, "invalid", "dataBase64"},
		{"base64 data that is not JSON for a JSON content type", "/streams/bad-1", `{"type":"A","dataBase64":"e3t7"}`, nil, 400, "invalid", "not valid JSON"},
		{"a reserved event type", "/streams/bad-1", `{"type":"$streamDeleted"}`, nil, 400, "invalid", "reserved"},
		{"an unknown query parameter", "/streams/bad-1?expected=1", `{"type":"A"}`, nil, 400, "invalid", `unknown query parameter "expected"`},
		{"a stream name with a control character", "/streams/bad%01", `{"type":"A"}`, nil, 400, "invalid", "control character"},
		{"a stream name that is not UTF-8", "/streams/bad%ff", `{"type":"A"}`, nil, 400, "invalid", "UTF-8"},
		{"writing $all", "/streams/$all", `{"type":"A"}`, nil, 400, "invalid", "cannot be written"},
		{"two Expected-Revision headers", "/streams/bad-1", `{"type":"A"}`, []string{"Expected-Revision", "1", "Expected-Revision", "2"}, 400, "invalid", "more than one"},
		{"a body over the limit", "/streams/bad-1", big, nil, 413, "invalid", "over the limit of 1024 bytes"},
		{"a form body", "/streams/bad-1", `type=A`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "invalid", "--json"},
		{"an unparsable content type", "/streams/bad-1", `{"type":"A"}`, []string{"Content-Type", "application/"}, 415, "invalid", "application/json"},
		{"wrong credentials", "/streams/bad-1", `{"type":"A"}`, []string{"Authorization", "Basic d3Jvbmc6d3Jvbmc="}, 401, "unauthenticated", "wrong user name or password"},
		{"a caller without rights", "/streams/bad-1", `{"type":"A"}`, []string{"Authorization", nobodyAuth}, 403, "permission_denied", "may not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.doMulti("POST", tt.path, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			got := r.errorOf(t)
			if got.Kind != tt.kind || !strings.Contains(got.Message, tt.msg) {
				t.Fatalf("error %+v, want kind %s and a message saying %q", got, tt.kind, tt.msg)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", r.header.Get("Content-Type"))
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") != `Basic realm="verity"` {
				t.Fatalf("401 without WWW-Authenticate: %v", r.header)
			}
		})
	}
	if n := len(e.read("/streams/$all").Events); n != 0 {
		t.Fatalf("bad requests wrote %d events", n)
	}
}

// doMulti is do, but headers may repeat.
func (e *env) doMulti(method, path, body string, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	seen := map[string]bool{}
	for i := 0; i+1 < len(headers); i += 2 {
		if !seen[headers[i]] {
			req.Header.Del(headers[i])
			seen[headers[i]] = true
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestReadStream(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("order-7", "A", 10) // revisions 0..9
	tests := []struct {
		name     string
		query    string
		wantRevs []uint64
		wantEnd  bool
		nextFrom string // "" when no next link is expected
	}{
		{"forwards from the start by default", "", []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, true, "10"},
		{"forwards one page", "?limit=3", []uint64{0, 1, 2}, false, "3"},
		{"forwards from a revision", "?from=7&limit=5", []uint64{7, 8, 9}, true, "10"},
		{"forwards past the end", "?from=10", []uint64{}, true, "10"},
		{"forwards from start by name", "?from=start&limit=2", []uint64{0, 1}, false, "2"},
		{"backwards from the end by default", "?direction=backwards&limit=4", []uint64{9, 8, 7, 6}, false, "5"},
		{"backwards from a revision", "?direction=backwards&from=2", []uint64{2, 1, 0}, true, ""},
		{"backwards to exactly the start", "?direction=backwards&from=end&limit=10", []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			var p page
			r := e.must(http.StatusOK, &p, "GET", "/streams/order-7"+tt.query, "")
			if got := p.revisions(); !slices.Equal(got, tt.wantRevs) {
				t.Fatalf("revisions %v, want %v", got, tt.wantRevs)
			}
			if p.End != tt.wantEnd {
				t.Fatalf("end %v, want %v", p.End, tt.wantEnd)
			}
			if tt.nextFrom == "" {
				if p.Next != "" || r.header.Get("Link") != "" {
					t.Fatalf("next %q, link %q; want none", p.Next, r.header.Get("Link"))
				}
				return
			}
			u, err := url.Parse(p.Next)
			if err != nil || u.Path != "/streams/order-7" || u.Query().Get("from") != tt.nextFrom {
				t.Fatalf("next %q, want from=%s on /streams/order-7", p.Next, tt.nextFrom)
			}
			if strings.Contains(string(r.body), `\u0026`) {
				t.Fatalf("body %s escapes & for HTML", r.body)
			}
			if r.header.Get("Link") != "<"+p.Next+`>; rel="next"` {
				t.Fatalf("Link header %q for next %q", r.header.Get("Link"), p.Next)
			}
		})
	}

	t.Run("following next links pages through the stream once", func(t *testing.T) {
		e := e.with(t)
		var all []uint64
		next := "/streams/order-7?direction=backwards&limit=3"
		for i := 0; next != "" && i < 10; i++ {
			p := e.read(next)
			all = append(all, p.revisions()...)
			next = p.Next
		}
		if want := []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}; !slices.Equal(all, want) {
			t.Fatalf("paged %v, want %v", all, want)
		}
	})

	errs := []struct {
		name, path string
		status     int
		msg        string
	}{
		{"a stream never written", "/streams/nothing-here", 404, "not_found"},
		{"a bad direction", "/streams/order-7?direction=up", 400, `direction "up": want forwards or backwards`},
		{"a bad from", "/streams/order-7?from=-1", 400, `from "-1": want start, end or a whole number`},
		{"a zero limit", "/streams/order-7?limit=0", 400, `limit "0": want a whole number from 1 to 1000`},
		{"a limit over the most", "/streams/order-7?limit=1001", 400, "from 1 to 1000"},
		{"a repeated parameter", "/streams/order-7?limit=1&limit=2", 400, "given 2 times"},
		{"a filter on a stream", "/streams/order-7?eventType=A", 400, "applies to $all only"},
		{"an unknown parameter", "/streams/order-7?form=1", 400, `unknown query parameter "form"`},
		{"a denied caller", "/streams/order-7", 403, "may not"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("GET", tt.path, "", "Authorization", map[bool]string{true: nobodyAuth, false: adminAuth}[tt.status == 403])
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.errorOf(t); !strings.Contains(got.Message+" "+got.Kind, tt.msg) {
				t.Fatalf("error %+v does not say %q", got, tt.msg)
			}
		})
	}
}

func TestReadAll(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("order-1", "OrderPlaced", 2)                                          // positions 1, 2
	e.clock.Advance(time.Minute)                                                    //
	e.appendN("customer-1", "CustomerAdded", 1)                                     // 3
	e.appendN("order-2", "OrderShipped", 1)                                         // 4
	e.must(http.StatusOK, nil, "PUT", "/streams/order-2/metadata", `{"owner":"x"}`) // 5: $$order-2 $metadata
	e.appendN("orderly-1", "OrderPlaced", 1)                                        // 6
	t0 := e.clock.Now().Add(-time.Minute)

	tests := []struct {
		name     string
		query    string
		wantPos  []uint64
		wantEnd  bool
		nextFrom string
	}{
		{"every event forwards", "", []uint64{1, 2, 3, 4, 5, 6}, true, "7"},
		{"backwards from the end", "?direction=backwards&limit=2", []uint64{6, 5}, false, "4"},
		{"backwards from a position", "?direction=backwards&from=2", []uint64{2, 1}, true, ""},
		{"one category", "?category=order", []uint64{1, 2, 4}, true, "5"},
		{"categories OR'd", "?category=order&category=customer", []uint64{1, 2, 3, 4}, true, "5"},
		{"event types OR'd", "?eventType=OrderPlaced&eventType=CustomerAdded", []uint64{1, 2, 3, 6}, true, "7"},
		{"an event type prefix", "?eventTypePrefix=Order", []uint64{1, 2, 4, 6}, true, "7"},
		{"a stream prefix", "?streamPrefix=order", []uint64{1, 2, 4, 6}, true, "7"},
		{"a stream regex", "?streamRegex=%5Eorder-%5B0-9%5D%2B%24", []uint64{1, 2, 4}, true, "5"},
		{"an event type regex", "?eventTypeRegex=Shipped%24", []uint64{4}, true, "5"},
		{"system events excluded", "?excludeSystem=true", []uint64{1, 2, 3, 4, 6}, true, "7"},
		{"filters AND'd", "?category=order&eventType=OrderPlaced", []uint64{1, 2}, true, "3"},
		{"from a time", "?fromTime=" + url.QueryEscape(t0.Add(time.Second).Format(time.RFC3339Nano)), []uint64{3, 4, 5, 6}, true, "7"},
		{"a filtered page", "?category=order&limit=2", []uint64{1, 2}, false, "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			p := e.read("/streams/$all" + tt.query)
			if got := p.positions(); !slices.Equal(got, tt.wantPos) {
				t.Fatalf("positions %v, want %v", got, tt.wantPos)
			}
			if p.End != tt.wantEnd {
				t.Fatalf("end %v, want %v", p.End, tt.wantEnd)
			}
			if tt.nextFrom == "" {
				if p.Next != "" {
					t.Fatalf("next %q, want none", p.Next)
				}
				return
			}
			u, err := url.Parse(p.Next)
			if err != nil || u.Query().Get("from") != tt.nextFrom || u.Query().Has("fromTime") {
				t.Fatalf("next %q, want from=%s and no fromTime", p.Next, tt.nextFrom)
			}
			for k, v := range mustQuery(t, tt.query) {
				if k != "from" && k != "fromTime" && !slices.Equal(u.Query()[k], v) {
					t.Fatalf("next %q lost parameter %s=%v", p.Next, k, v)
				}
			}
		})
	}
	t.Run("the escaped name of $all reads the log too", func(t *testing.T) {
		e := e.with(t)
		if got := e.read("/streams/%24all?limit=1").positions(); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("positions %v, want [1]", got)
		}
	})

	errs := []struct{ name, query, msg string }{
		{"a bad regex", "?streamRegex=%28", `stream regular expression "("`},
		{"an empty category", "?category=", "category is empty"},
		{"an empty regex", "?eventTypeRegex=", "is empty"},
		{"a bad excludeSystem", "?excludeSystem=maybe", `excludeSystem "maybe": want true or false`},
		{"a bad fromTime", "?fromTime=yesterday", `fromTime "yesterday": want an RFC 3339 time`},
		{"from and fromTime together", "?from=1&fromTime=2030-01-02T03:04:05Z", "not both"},
		{"an unknown filter", "?type=A", `unknown query parameter "type"`},
		{"a repeated regex", "?streamRegex=a&streamRegex=b", "given 2 times"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("GET", "/streams/$all"+tt.query, "")
			if r.status != 400 {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if got := r.errorOf(t); got.Kind != "invalid" || !strings.Contains(got.Message, tt.msg) {
				t.Fatalf("error %+v does not say %q", got, tt.msg)
			}
		})
	}
}

func mustQuery(t testing.TB, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(strings.TrimPrefix(q, "?"))
	if err != nil {
		t.Fatalf("parse query %q: %v", q, err)
	}
	return v
}

func TestMultiAppend(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("acct-1", "Opened", 1)

	t.Run("appends to every stream atomically", func(t *testing.T) {
		e := e.with(t)
		var res struct {
			Results []appendResultOut `json:"results"`
		}
		e.must(http.StatusCreated, &res, "POST", "/streams", `{"appends":[
			{"stream":"acct-1","expectedRevision":0,"events":[{"type":"Debited","data":{"amount":5}}]},
			{"stream":"acct-2","expectedRevision":"no-stream","events":[{"type":"Credited"},{"type":"Noted"}]}]}`)
		want := []appendResultOut{{Stream: "acct-1", Revision: 1, Position: 4}, {Stream: "acct-2", Revision: 1, Position: 4}}
		if len(res.Results) != 2 || res.Results[0].Stream != "acct-1" || res.Results[0].Revision != 1 ||
			res.Results[1].Stream != "acct-2" || res.Results[1].Revision != 1 {
			t.Fatalf("results %+v, want streams and revisions of %+v", res.Results, want)
		}
		if got := e.read("/streams/acct-2").types(); !slices.Equal(got, []string{"Credited", "Noted"}) {
			t.Fatalf("acct-2 holds %v", got)
		}
	})

	t.Run("a failing condition writes nothing to any stream", func(t *testing.T) {
		e := e.with(t)
		before := e.read("/streams/$all").positions()
		r := e.do("POST", "/streams", `{"appends":[
			{"stream":"acct-3","events":[{"type":"Credited"}]},
			{"stream":"acct-1","expectedRevision":0,"events":[{"type":"Debited"}]}]}`)
		if r.status != 409 {
			t.Fatalf("status %d, want 409: %s", r.status, r.body)
		}
		if got := r.errorOf(t); got.Stream != "acct-1" || got.Kind != "conflict" {
			t.Fatalf("error %+v, want a conflict on acct-1", got)
		}
		if after := e.read("/streams/$all").positions(); !slices.Equal(before, after) {
			t.Fatalf("log changed from %v to %v", before, after)
		}
		if r := e.do("GET", "/streams/acct-3", ""); r.status != 404 {
			t.Fatalf("acct-3 read status %d, want 404", r.status)
		}
	})

	bad := []struct{ name, body, msg string }{
		{"no appends", `{"appends":[]}`, `"appends" is missing or empty`},
		{"not an object", `[{"stream":"a"}]`, "not an array"},
		{"a stream twice", `{"appends":[{"stream":"a","events":[{"type":"A"}]},{"stream":"a","events":[{"type":"B"}]}]}`, "same stream as appends[0]"},
		{"a missing stream", `{"appends":[{"events":[{"type":"A"}]}]}`, `appends[0]: "stream" is missing`},
		{"a bad event", `{"appends":[{"stream":"a","events":[{"type":"A"}]},{"stream":"b","events":[{"id":"x","type":"A"}]}]}`, `appends[1]: event 0: id "x"`},
		{"a bad expected revision", `{"appends":[{"stream":"a","expectedRevision":"never","events":[{"type":"A"}]}]}`, `appends[0].expectedRevision "never"`},
		{"an unknown field", `{"appends":[{"stream":"a","expected":1,"events":[{"type":"A"}]}]}`, `unknown field "expected"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			before := e.read("/streams/$all").positions()
			r := e.do("POST", "/streams", tt.body)
			if r.status != 400 {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if got := r.errorOf(t); !strings.Contains(got.Message, tt.msg) {
				t.Fatalf("message %q does not say %q", got.Message, tt.msg)
			}
			if after := e.read("/streams/$all").positions(); !slices.Equal(before, after) {
				t.Fatalf("log changed from %v to %v", before, after)
			}
		})
	}
	t.Run("the Expected-Revision header is refused", func(t *testing.T) {
		e := e.with(t)
		r := e.do("POST", "/streams", `{"appends":[{"stream":"z","events":[{"type":"A"}]}]}`, "Expected-Revision", "any")
		if r.status != 400 || !strings.Contains(r.errorOf(t).Message, "in its entry") {
			t.Fatalf("status %d body %s", r.status, r.body)
		}
	})
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("cart-1", "ItemAdded", 5)

	r := e.do("GET", "/streams/cart-1/metadata", "")
	if r.status != 404 || r.errorOf(t).Kind != "not_found" {
		t.Fatalf("metadata never set: status %d body %s, want 404", r.status, r.body)
	}
	var res appendResultOut
	e.must(http.StatusOK, &res, "PUT", "/streams/cart-1/metadata",
		`{"$maxCount":2,"$acl":{"$r":"$all","$w":["ops","$admins"]},"owner":"shop"}`, "Expected-Revision", "no-stream")
	if res.Revision != 0 {
		t.Fatalf("first metadata revision %d, want 0", res.Revision)
	}
	var got struct {
		Stream   string                 `json:"stream"`
		Revision uint64                 `json:"revision"`
		Metadata map[string]interface{} `json:"metadata"`
	}
	e.must(http.StatusOK, &got, "GET", "/streams/cart-1/metadata", "")
	if got.Stream != "cart-1" || got.Revision != 0 || got.Metadata["$maxCount"] != float64(2) || got.Metadata["owner"] != "shop" {
		t.Fatalf("metadata %+v", got)
	}
	acl, _ := got.Metadata["$acl"].(map[string]any)
	if acl == nil || len(acl["$w"].([]any)) != 2 {
		t.Fatalf("acl %v", got.Metadata["$acl"])
	}
	if revs := e.read("/streams/cart-1").revisions(); !slices.Equal(revs, []uint64{3, 4}) {
		t.Fatalf("with $maxCount 2 the stream reads %v, want [3 4]", revs)
	}
	if revs := e.read("/streams/$$cart-1").types(); !slices.Equal(revs, []string{"$metadata"}) {
		t.Fatalf("the metadata stream reads %v", revs)
	}

	bad := []struct {
		name, body string
		headers    []string
		status     int
		msg        string
	}{
		{"a stale expected revision", `{"$maxCount":3}`, []string{"Expected-Revision", "no-stream"}, 409, "actual 0"},
		{"an unknown system key", `{"$maxcount":3}`, nil, 400, `unknown metadata key "$maxcount"`},
		{"an unknown acl key", `{"$acl":{"$read":"x"}}`, nil, 400, `unknown key "$read"`},
		{"an acl that is not an object", `{"$acl":"x"}`, nil, 400, `"$acl" must be an object`},
		{"a negative max age", `{"$maxAge":-1}`, nil, 400, "$maxAge"},
		{"a max age too long for a duration", `{"$maxAge":10000000000000}`, nil, 400, "over the most"},
		{"not an object", `[1]`, nil, 400, "must be a metadata object"},
		{"a bad header", `{}`, []string{"Expected-Revision", "x"}, 400, `header "x"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.do("PUT", "/streams/cart-1/metadata", tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if m := r.errorOf(t).Message; !strings.Contains(m, tt.msg) {
				t.Fatalf("message %q does not say %q", m, tt.msg)
			}
			var now struct {
				Revision uint64 `json:"revision"`
			}
			e.must(http.StatusOK, &now, "GET", "/streams/cart-1/metadata", "")
			if now.Revision != 0 {
				t.Fatalf("a refused update moved the metadata to revision %d", now.Revision)
			}
		})
	}
}

func TestDeleteAndTombstone(t *testing.T) {
	e := newEnv(t, Options{})
	e.appendN("doc-1", "A", 2)
	e.appendN("doc-2", "A", 1)

	r := e.do("DELETE", "/streams/doc-1", "", "Expected-Revision", "0")
	if r.status != 409 {
		t.Fatalf("delete with a stale revision: status %d, want 409", r.status)
	}
	var del deleteResultOut
	e.must(http.StatusOK, &del, "DELETE", "/streams/doc-1", "", "Expected-Revision", "1")
	if del.Position == 0 {
		t.Fatalf("delete result %+v has no position", del)
	}
	if r := e.do("GET", "/streams/doc-1", ""); r.status != 404 {
		t.Fatalf("read after soft delete: status %d, want 404", r.status)
	}
	var res appendResultOut
	e.must(http.StatusCreated, &res, "POST", "/streams/doc-1", `{"type":"B"}`)
	if res.Revision != 2 {
		t.Fatalf("append after soft delete at revision %d, want 2 (revisions continue)", res.Revision)
	}

	for _, q := range []string{"?tombstone=maybe", "?hard=true"} {
		if r := e.do("DELETE", "/streams/doc-2"+q, ""); r.status != 400 {
			t.Fatalf("DELETE %s: status %d, want 400", q, r.status)
		}
	}
	e.must(http.StatusOK, &del, "DELETE", "/streams/doc-2?tombstone=true", "")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/streams/doc-2", ""},
		{"POST", "/streams/doc-2", `{"type":"A"}`},
		{"DELETE", "/streams/doc-2?tombstone=true", ""},
	} {
		r := e.do(c.method, c.path, c.body)
		if r.status != http.StatusGone || r.errorOf(t).Kind != "deleted" {
			t.Fatalf("%s %s after tombstone: status %d body %s, want 410 deleted", c.method, c.path, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/streams/doc-1", "", "Authorization", nobodyAuth); r.status != 403 {
		t.Fatalf("denied delete: status %d, want 403", r.status)
	}
	if len(e.read("/streams/doc-1").Events) != 1 {
		t.Fatal("a denied delete deleted")
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, Options{})
	t.Run("stream names are path-unescaped", func(t *testing.T) {
		e := e.with(t)
		for _, name := range []string{"a/b", "with space", "$system", "ünï-cødé", "100%", "a?b#c"} {
			e.must(http.StatusCreated, nil, "POST", "/streams/"+url.PathEscape(name), `{"type":"A"}`)
			p := e.read("/streams/" + url.PathEscape(name))
			if len(p.Events) != 1 || p.Events[0].Stream != name {
				t.Fatalf("stream %q read back as %+v", name, p.Events)
			}
		}
	})
	tests := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"a wrong method on a stream", "PUT", "/streams/x", 405, "GET, HEAD, POST, DELETE"},
		{"a wrong method on metadata", "POST", "/streams/x/metadata", 405, "GET, HEAD, PUT"},
		{"a wrong method on the multi-append and search", "PUT", "/streams", 405, "GET, HEAD, POST"},
		{"a wrong method on a subscription", "POST", "/subscribe/x", 405, "GET, HEAD"},
		{"an unknown path", "GET", "/nothing", 404, ""},
		{"an unescaped slash in a stream name", "GET", "/streams/a/b", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			r := e.do(tt.method, tt.path, "")
			if r.status != tt.status || r.header.Get("Allow") != tt.allow {
				t.Fatalf("status %d allow %q, want %d %q", r.status, r.header.Get("Allow"), tt.status, tt.allow)
			}
			if got := r.errorOf(t); got.Message == "" {
				t.Fatalf("error %+v has no message", got)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	want := map[verity.ErrorKind]int{
		verity.Internal: 500, verity.Invalid: 400, verity.NotFound: 404, verity.Conflict: 409,
		verity.Deleted: 410, verity.Unauthenticated: 401, verity.PermissionDenied: 403,
		verity.Unavailable: 503, verity.ResourceExhausted: 429, verity.ErrorKind(200): 500,
	}
	for k, s := range want {
		if got := StatusOf(k); got != s {
			t.Errorf("StatusOf(%v) = %d, want %d", k, got, s)
		}
	}
}

func TestInternalErrorsAreNotDetailed(t *testing.T) {
	got := errorJSONOf(verity.Errorf(verity.Internal, "append", "segment 7 checksum mismatch at offset 99"))
	if got.Kind != "internal" || strings.Contains(got.Message, "segment") {
		t.Fatalf("internal error shown as %+v", got)
	}
	if got := errorJSONOf(context.Canceled); got.Kind != "unavailable" {
		t.Fatalf("a canceled request shown as %+v", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
	for _, o := range []Options{{MaxBodyBytes: -1}, {SSEHeartbeat: -time.Second}, {DefaultReadLimit: 10, MaxReadLimit: 5}} {
		if err := o.Validate(); verity.KindOf(err) != verity.Invalid {
			t.Errorf("Validate(%+v) = %v, want Invalid", o, err)
		}
	}
	if d := (Options{MaxReadLimit: 50}).withDefaults(); d.DefaultReadLimit != 50 {
		t.Errorf("with MaxReadLimit 50 the default limit is %d, want 50", d.DefaultReadLimit)
	}
}
