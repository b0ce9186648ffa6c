package gateway_test

import (
	"strings"
	"testing"
)

func TestTraceContext(t *testing.T) {
	e := newEnv(t)
	e.upstream("svc", "s1", echo("s1"))
	_, url := e.gateway(parse(t, `routes: [{name: r, match: "/", service: svc}]`))
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent   = "00f067aa0ba902b7"
		incoming = "00-" + traceID + "-" + parent + "-01"
	)
	parts := func(tp string) []string {
		t.Helper()
		p := strings.Split(tp, "-")
		if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
			t.Fatalf("traceparent %q is malformed", tp)
		}
		return p
	}
	t.Run("a valid traceparent keeps its trace id, each hop gets its own span", func(t *testing.T) {
		a := e.do("GET", url+"/x", "", "Traceparent", incoming, "Tracestate", "vendor=1")
		var got echoed
		a.json(t, &got)
		up, answered := parts(got.Traceparent), parts(a.header.Get("Traceparent"))
		if up[1] != traceID || answered[1] != traceID {
			t.Errorf("trace ids: upstream %s, answer %s; want %s", up[1], answered[1], traceID)
		}
		if up[2] == parent || answered[2] == parent || up[2] == answered[2] {
			t.Errorf("spans: incoming %s, gateway %s, upstream call %s; want three different", parent, answered[2], up[2])
		}
		if got.Tracestate != "vendor=1" {
			t.Errorf("tracestate %q was not passed on", got.Tracestate)
		}
	})
	for _, bad := range []string{"", "garbage", "00-" + strings.Repeat("0", 32) + "-" + parent + "-01",
		"ff-" + traceID + "-" + parent + "-01", "00-" + strings.ToUpper(traceID) + "-" + parent + "-01"} {
		t.Run("an invalid traceparent "+bad+" starts a new trace", func(t *testing.T) {
			a := e.do("GET", url+"/x", "", "Traceparent", bad, "Tracestate", "vendor=1")
			var got echoed
			a.json(t, &got)
			up, answered := parts(got.Traceparent), parts(a.header.Get("Traceparent"))
			if up[1] != answered[1] || up[1] == traceID || up[1] == strings.Repeat("0", 32) {
				t.Errorf("upstream trace %s, answer trace %s: want one new trace", up[1], answered[1])
			}
			if got.Tracestate != "" {
				t.Errorf("tracestate %q of an invalid traceparent was passed on", got.Tracestate)
			}
		})
	}
}
