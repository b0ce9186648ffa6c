package verity_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestErrorKindsSurviveTheirNames(t *testing.T) {
	for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
		if got := verity.ParseErrorKind(k.String()); got != k {
			t.Errorf("ParseErrorKind(%q) = %v, want %v", k.String(), got, k)
		}
	}
	if got := verity.ParseErrorKind("no such kind"); got != verity.Internal {
		t.Errorf("an unknown kind name parsed as %v, want internal", got)
	}
	if got := verity.ErrorKind(200).String(); got != "internal" {
		t.Errorf("an unknown kind prints as %q, want internal", got)
	}
}

func TestErrorsMatchTheirKindThroughWrapping(t *testing.T) {
	err := fmt.Errorf("outer: %w", verity.WrongRevision("append", "order-1", verity.Exact(3), verity.StreamState{Exists: true, Revision: 5}))
	if !errors.Is(err, verity.ErrConflict) || errors.Is(err, verity.ErrNotFound) {
		t.Fatalf("errors.Is on a wrapped conflict: conflict %v, not found %v", errors.Is(err, verity.ErrConflict), errors.Is(err, verity.ErrNotFound))
	}
	if verity.KindOf(err) != verity.Conflict || verity.KindOf(errors.New("plain")) != verity.Internal {
		t.Fatal("KindOf does not find the kind, or a plain error is not internal")
	}
	var ve *verity.Error
	if !errors.As(err, &ve) || ve.Actual == nil || ve.Actual.Revision != 5 || ve.Expected == nil {
		t.Fatalf("the conflict lost its revisions: %+v", ve)
	}
	if want := `append: stream "order-1": expected revision 3, actual 5`; ve.Error() != want {
		t.Fatalf("message %q, want %q", ve.Error(), want)
	}
}

func TestCategoryIsTheNameBeforeTheFirstDash(t *testing.T) {
	for stream, want := range map[string]string{"order-42": "order", "order-item-1": "order", "order": "", "-1": "", "": ""} {
		if got := verity.Category(stream); got != want {
			t.Errorf("Category(%q) = %q, want %q", stream, got, want)
		}
	}
}

func TestStreamMetadataRoundTripsKurrentDBJSON(t *testing.T) {
	tb := uint64(7)
	m := verity.StreamMetadata{
		MaxAge: 90 * time.Second, MaxCount: 10, TruncateBefore: &tb,
		ACL:    &verity.StreamACL{Read: []string{"$all"}, Write: []string{"orders", "$admins"}},
		Custom: map[string]json.RawMessage{"owner": json.RawMessage(`"team-a"`)},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back verity.StreamMetadata
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip of %s gave %+v, want %+v", b, back, m)
	}
}

func TestStreamMetadataAcceptsARoleAsAString(t *testing.T) {
	var m verity.StreamMetadata
	if err := json.Unmarshal([]byte(`{"$acl":{"$r":"$all","$w":["a","b"]},"$unknown":1}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.ACL == nil || !reflect.DeepEqual(m.ACL.Read, []string{"$all"}) || !reflect.DeepEqual(m.ACL.Write, []string{"a", "b"}) {
		t.Fatalf("ACL %+v", m.ACL)
	}
	if len(m.Custom) != 0 {
		t.Fatalf("an unknown $ key was kept as custom: %v", m.Custom)
	}
}

func TestStreamMetadataRejectsBadValues(t *testing.T) {
	for _, in := range []string{`[]`, `{"$maxAge":-1}`, `{"$maxAge":"1h"}`, `{"$maxCount":-3}`, `{"$tb":"x"}`, `{"$acl":5}`, `{"$acl":{"$r":5}}`} {
		var m verity.StreamMetadata
		if err := json.Unmarshal([]byte(in), &m); err == nil {
			t.Errorf("metadata %s was accepted as %+v", in, m)
		}
	}
}

func TestSoftDeletedMarker(t *testing.T) {
	m := verity.StreamMetadata{MaxCount: 3}.SoftDeleted()
	if !m.IsSoftDeleted() || m.MaxCount != 3 {
		t.Fatalf("SoftDeleted gave %+v", m)
	}
	if (verity.StreamMetadata{}).IsSoftDeleted() {
		t.Fatal("empty metadata reads as soft deleted")
	}
}

func TestFilterMatching(t *testing.T) {
	cases := []struct {
		name   string
		f      verity.Filter
		stream string
		typ    string
		want   bool
	}{
		{"the zero filter matches everything", verity.Filter{}, "a-1", "$x", true},
		{"a category matches its streams", verity.Filter{Categories: []string{"order"}}, "order-1", "Placed", true},
		{"a category does not match a prefix of it", verity.Filter{Categories: []string{"order"}}, "orders-1", "Placed", false},
		{"fields are and-ed", verity.Filter{Categories: []string{"order"}, EventTypes: []string{"Paid"}}, "order-1", "Placed", false},
		{"list entries are or-ed", verity.Filter{EventTypes: []string{"Paid", "Placed"}}, "order-1", "Placed", true},
		{"system events can be excluded", verity.Filter{ExcludeSystemEvents: true}, "$$order-1", "$metadata", false},
		{"stream regexp", verity.Filter{StreamRegexp: `^order-\d+$`}, "order-12", "Placed", true},
		{"type prefix", verity.Filter{EventTypePrefixes: []string{"Ord"}}, "x-1", "OrderPlaced", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.f.Compile()
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(c.stream, c.typ); got != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", c.stream, c.typ, got, c.want)
			}
		})
	}
	if _, err := (verity.Filter{StreamRegexp: "("}).Compile(); !errors.Is(err, verity.ErrInvalid) {
		t.Fatalf("a bad regexp gave %v, want invalid", err)
	}
}

// FuzzStreamMetadata: metadata arrives from clients; decoding it never panics, and what it
// accepts encodes and decodes to the same value.
func FuzzStreamMetadata(f *testing.F) {
	for _, s := range []string{`{}`, `{"$maxAge":60,"$maxCount":5,"$tb":2}`, `{"$acl":{"$r":"$all","$w":["a"]}}`, `{"x":[1,{"y":null}]}`, `{"$tb":9223372036854775807}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m verity.StreamMetadata
		if json.Unmarshal(b, &m) != nil {
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", b, err)
		}
		var back verity.StreamMetadata
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("encoded %q does not decode: %v", out, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(out) {
			t.Fatalf("not stable: %s then %s", out, again)
		}
	})
}

func TestMetadataMaxAgeOverflowIsRefused(t *testing.T) {
	var m verity.StreamMetadata
	if err := json.Unmarshal([]byte(`{"$maxAge":10000000000000}`), &m); err == nil {
		t.Fatalf("a $maxAge of 1e13 seconds was accepted as %v; it does not fit a time.Duration", m.MaxAge)
	}
	if err := json.Unmarshal([]byte(`{"$maxAge":9223372036}`), &m); err != nil || m.MaxAge <= 0 {
		t.Fatalf("the largest representable $maxAge: %v, %v", m.MaxAge, err)
	}
}

func TestEveryKindHasItsOwnHTTPStatus(t *testing.T) {
	seen := map[int]verity.ErrorKind{}
	for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
		st := k.HTTPStatus()
		if other, dup := seen[st]; dup {
			t.Fatalf("kinds %v and %v share HTTP status %d", other, k, st)
		}
		seen[st] = k
	}
	if got := verity.ErrorKind(200).HTTPStatus(); got != 500 {
		t.Fatalf("an unknown kind answers %d, want 500", got)
	}
}
