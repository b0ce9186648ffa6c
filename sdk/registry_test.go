package sdk_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
)

func TestRegistryEncodeDecode(t *testing.T) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	md := sdk.Metadata{CorrelationID: "c-1", CausationID: "k-1", Extra: map[string]json.RawMessage{"userId": json.RawMessage(`"ann"`)}}
	for _, v := range []any{Deposited{Amount: 7}, &Deposited{Amount: 7}} {
		ed, err := reg.Encode(v, md)
		if err != nil {
			t.Fatal(err)
		}
		if ed.Type != "MoneyDeposited" || ed.ContentType != verity.ContentTypeJSON || string(ed.Data) != `{"amount":7}` {
			t.Fatalf("encode %#v: got %+v", v, ed)
		}
		rec := verity.RecordedEvent{ID: uuid.New(), Type: ed.Type, Data: ed.Data, Metadata: ed.Metadata, Stream: "account-1"}
		ev, err := reg.Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data != (Deposited{Amount: 7}) || ev.Type != "MoneyDeposited" || ev.Meta.CorrelationID != "c-1" || ev.Meta.CausationID != "k-1" || string(ev.Meta.Extra["userId"]) != `"ann"` {
			t.Fatalf("decode: got %+v", ev)
		}
	}
}

func TestRegistryRefusesBadInput(t *testing.T) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"an empty type name", sdk.Register[Open](reg, ""), "empty"},
		{"a pointer type", sdk.Register[*Open](reg, "Open"), "value type"},
		{"a type name twice", sdk.Register[Open](reg, "MoneyDeposited"), `"MoneyDeposited" is registered already`},
		{"a Go type twice", sdk.Register[Deposited](reg, "Deposited2"), "registered already"},
		{"an upcaster from a current type", reg.AddUpcaster("MoneyDeposited", "X", func(b []byte) ([]byte, error) { return b, nil }), "current type"},
		{"an upcaster without a function", reg.AddUpcaster("A.v1", "A", nil), "nil"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, verity.ErrInvalid) || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("got %v, want Invalid mentioning %q", tt.err, tt.want)
			}
		})
	}
	t.Run("refuses to encode an unregistered type", func(t *testing.T) {
		_, err := reg.Encode(Open{}, sdk.Metadata{})
		if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "sdk_test.Open") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("names an unregistered type when decoding", func(t *testing.T) {
		_, err := reg.Decode(verity.RecordedEvent{Type: "Mystery", Data: []byte(`{}`), Stream: "s-1", Revision: 3})
		if !errors.Is(err, sdk.ErrUnknownType) || !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), `"Mystery"`) || !strings.Contains(err.Error(), "s-1@3") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("reports data that does not decode", func(t *testing.T) {
		_, err := reg.Decode(verity.RecordedEvent{Type: "MoneyDeposited", Data: []byte(`{"amount":"lots"}`)})
		if !errors.Is(err, verity.ErrInvalid) || errors.Is(err, sdk.ErrUnknownType) {
			t.Fatalf("got %v", err)
		}
	})
}

// Deposits were once recorded in cents as "Deposit.v1" {"cents":...}, then as
// "Deposit.v2" {"amount":..., "currency":...}; the current type is MoneyDeposited.
type depositV1 struct {
	Cents int `json:"cents"`
}
type depositV2 struct {
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
}

func addDepositUpcasters(t testing.TB, reg *sdk.Registry) {
	t.Helper()
	if err := sdk.Upcast(reg, "Deposit.v1", "Deposit.v2", func(old depositV1) (depositV2, error) {
		return depositV2{Amount: old.Cents / 100, Currency: "EUR"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Upcast(reg, "Deposit.v2", "MoneyDeposited", func(old depositV2) (Deposited, error) {
		if old.Currency != "EUR" {
			return Deposited{}, errors.New("only EUR deposits are supported")
		}
		return Deposited{Amount: old.Amount}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestUpcasters(t *testing.T) {
	reg := newRegistry(t, sdk.RegistryOptions{})
	addDepositUpcasters(t, reg)
	t.Run("a chain turns the oldest version into the current type", func(t *testing.T) {
		ev, err := reg.Decode(verity.RecordedEvent{Type: "Deposit.v1", Data: []byte(`{"cents":1250}`)})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data != (Deposited{Amount: 12}) || ev.Type != "MoneyDeposited" || ev.Recorded.Type != "Deposit.v1" {
			t.Fatalf("got %+v", ev)
		}
	})
	t.Run("a middle version is upcast too", func(t *testing.T) {
		ev, err := reg.Decode(verity.RecordedEvent{Type: "Deposit.v2", Data: []byte(`{"amount":3,"currency":"EUR"}`)})
		if err != nil || ev.Data != (Deposited{Amount: 3}) {
			t.Fatalf("got %+v, %v", ev, err)
		}
	})
	t.Run("an upcaster's error names the step", func(t *testing.T) {
		_, err := reg.Decode(verity.RecordedEvent{Type: "Deposit.v2", Data: []byte(`{"amount":3,"currency":"USD"}`)})
		if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), `upcasting "Deposit.v2" to "MoneyDeposited"`) || !strings.Contains(err.Error(), "only EUR") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a loop is refused", func(t *testing.T) {
		err := reg.AddUpcaster("MoneyDeposited.v0", "Deposit.v1", func(b []byte) ([]byte, error) { return b, nil })
		if err != nil {
			t.Fatalf("a longer chain is fine: %v", err)
		}
		err = reg.AddUpcaster("Loop.a", "Loop.b", func(b []byte) ([]byte, error) { return b, nil })
		if err != nil {
			t.Fatal(err)
		}
		err = reg.AddUpcaster("Loop.b", "Loop.a", func(b []byte) ([]byte, error) { return b, nil })
		if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "loop") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a chain ending at an unregistered type is an unknown type", func(t *testing.T) {
		if err := reg.AddUpcaster("Gone.v1", "Gone", func(b []byte) ([]byte, error) { return b, nil }); err != nil {
			t.Fatal(err)
		}
		_, err := reg.Decode(verity.RecordedEvent{Type: "Gone.v1", Data: []byte(`{}`)})
		if !errors.Is(err, sdk.ErrUnknownType) || !strings.Contains(err.Error(), `upcast to "Gone"`) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestMetadata(t *testing.T) {
	t.Run("reads and writes KurrentDB's keys", func(t *testing.T) {
		md, err := sdk.ParseMetadata([]byte(`{"$correlationId":"c","$causationId":"k","who":"ann"}`))
		if err != nil {
			t.Fatal(err)
		}
		if md.CorrelationID != "c" || md.CausationID != "k" || string(md.Extra["who"]) != `"ann"` {
			t.Fatalf("got %+v", md)
		}
		b, err := md.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]string
		if err := json.Unmarshal(b, &obj); err != nil || obj["$correlationId"] != "c" || obj["$causationId"] != "k" || obj["who"] != "ann" {
			t.Fatalf("got %s (%v)", b, err)
		}
	})
	t.Run("empty metadata is the zero value and writes nothing", func(t *testing.T) {
		md, err := sdk.ParseMetadata(nil)
		if err != nil || md.CorrelationID != "" || md.Extra != nil {
			t.Fatalf("got %+v, %v", md, err)
		}
		if b, err := md.Marshal(); err != nil || b != nil {
			t.Fatalf("got %q, %v", b, err)
		}
	})
	t.Run("metadata that is not an object is Invalid", func(t *testing.T) {
		if _, err := sdk.ParseMetadata([]byte(`[1]`)); !errors.Is(err, verity.ErrInvalid) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("With sets an extra field without touching the original", func(t *testing.T) {
		a := sdk.Metadata{Extra: map[string]json.RawMessage{"x": json.RawMessage(`1`)}}
		b, err := a.With("y", 2)
		if err != nil || string(b.Extra["y"]) != "2" || string(b.Extra["x"]) != "1" || a.Extra["y"] != nil {
			t.Fatalf("got %+v, %+v, %v", a, b, err)
		}
		c, err := b.With(sdk.CorrelationIDKey, "c")
		if err != nil || c.CorrelationID != "c" {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
	t.Run("CausedBy carries the correlation id, or starts one", func(t *testing.T) {
		first := verity.RecordedEvent{ID: uuid.New()}
		md := sdk.CausedBy(first)
		if md.CorrelationID != first.ID.String() || md.CausationID != first.ID.String() {
			t.Fatalf("got %+v", md)
		}
		meta, _ := md.Marshal()
		second := verity.RecordedEvent{ID: uuid.New(), Metadata: meta}
		md = sdk.CausedBy(second)
		if md.CorrelationID != first.ID.String() || md.CausationID != second.ID.String() {
			t.Fatalf("got %+v", md)
		}
		if sdk.CorrelationID(second) != first.ID.String() || sdk.CausationID(second) != first.ID.String() {
			t.Fatal("CorrelationID or CausationID misread")
		}
	})
	t.Run("CausedBy carries the trace context and nothing else", func(t *testing.T) {
		tp := `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`
		cause := verity.RecordedEvent{ID: uuid.New(), Metadata: []byte(`{"traceparent":` + tp + `,"tracestate":"v=1","userId":"ann"}`)}
		md := sdk.CausedBy(cause)
		if string(md.Extra["traceparent"]) != tp || string(md.Extra["tracestate"]) != `"v=1"` {
			t.Errorf("trace context not carried: %+v", md.Extra)
		}
		if _, ok := md.Extra["userId"]; ok {
			t.Errorf("userId carried to the effect: %+v", md.Extra)
		}
		if md := sdk.CausedBy(verity.RecordedEvent{ID: uuid.New()}); md.Extra != nil {
			t.Errorf("extra fields from nowhere: %+v", md.Extra)
		}
	})
}

func TestDeterministicIDs(t *testing.T) {
	cmd := uuid.MustParse("6f1c5d2e-1d7a-4d0c-9b8e-1a2b3c4d5e6f")
	if sdk.EventID(cmd, 0) != sdk.EventID(cmd, 0) || sdk.EventID(cmd, 0) == sdk.EventID(cmd, 1) {
		t.Fatal("EventID is not a function of (command, index)")
	}
	if sdk.EventID(cmd, 0).Version() != 5 {
		t.Fatalf("EventID is version %d, want 5", sdk.EventID(cmd, 0).Version())
	}
	if sdk.CommandID(cmd, "a") != sdk.CommandID(cmd, "a") || sdk.CommandID(cmd, "a") == sdk.CommandID(cmd, "b") {
		t.Fatal("CommandID is not a function of (cause, key)")
	}
}
