package engine

import (
	"encoding/json"
	"testing"
)

// FuzzValidJSON holds the fast validator to encoding/json's verdict on any input.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"orderId":"0123456789","items":[{"sku":"x1","qty":2}],"total":12345}`,
		`{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `[1e10, -0.5, true, false, "x"]`, ` {"a" : 1 } `,
		"\"\xff\"", `{"a":}`, `[1,]`, `01`, `"\ud800"`, `{"a":1}{"b":2}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if want, got := json.Valid(b), validJSON(b); want != got {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
