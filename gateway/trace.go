package gateway

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// W3C trace context (https://www.w3.org/TR/trace-context/). The gateway is one hop of the
// trace: it keeps the trace id of a valid incoming traceparent (or starts a trace), gives
// itself a span id that it puts on the request it routes (so a command route records it)
// and on the answer, and gives every upstream call a span id of its own.

const (
	headerTraceparent = "Traceparent"
	headerTracestate  = "Tracestate"
)

// traceContext is a parsed traceparent.
type traceContext struct {
	traceID [16]byte
	spanID  [8]byte
	flags   byte
}

// parseTraceparent accepts version 00 exactly, and a later version by its first four
// fields, as the specification asks of a version-00 parser; ff is never valid. An all-zero
// trace id or parent id is invalid.
func parseTraceparent(s string) (traceContext, bool) {
	var tc traceContext
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return tc, false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return tc, false
	}
	var version, flags [1]byte
	if !decodeLowerHex(version[:], s[:2]) || !decodeLowerHex(tc.traceID[:], s[3:35]) ||
		!decodeLowerHex(tc.spanID[:], s[36:52]) || !decodeLowerHex(flags[:], s[53:55]) {
		return tc, false
	}
	if tc.traceID == ([16]byte{}) || tc.spanID == ([8]byte{}) {
		return tc, false
	}
	tc.flags = flags[0]
	return tc, true
}

func decodeLowerHex(dst []byte, s string) bool {
	if strings.ToLower(s) != s {
		return false
	}
	n, err := hex.Decode(dst, []byte(s))
	return err == nil && n == len(dst)
}

// newTrace starts a trace, sampled.
func newTrace() traceContext {
	var tc traceContext
	for tc.traceID == ([16]byte{}) {
		putRandom(tc.traceID[:])
	}
	tc.flags = 0x01
	return tc.child()
}

// child is the same trace with a fresh span id.
func (tc traceContext) child() traceContext {
	tc.spanID = [8]byte{}
	for tc.spanID == ([8]byte{}) {
		putRandom(tc.spanID[:])
	}
	return tc
}

func (tc traceContext) String() string {
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], tc.traceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], tc.spanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{tc.flags})
	return string(b[:])
}

func (tc traceContext) traceIDString() string { return hex.EncodeToString(tc.traceID[:]) }

func putRandom(b []byte) {
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
}

// startTrace reads the request's trace context, or starts one, and puts the gateway's own
// span on r.Header (where route handlers read it) and on the answer. An invalid
// traceparent drops tracestate with it, as the specification asks.
func startTrace(w http.ResponseWriter, r *http.Request) traceContext {
	in, ok := parseTraceparent(strings.TrimSpace(r.Header.Get(headerTraceparent)))
	var tc traceContext
	if ok {
		tc = in.child()
	} else {
		tc = newTrace()
		r.Header.Del(headerTracestate)
	}
	r.Header.Set(headerTraceparent, tc.String())
	w.Header().Set(headerTraceparent, tc.String())
	return tc
}
