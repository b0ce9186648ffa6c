package consolidator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/consolidator"
)

const thingsYAML = `
projections:
  - name: things
    categories: [thing]
    tables:
      - name: things
        key: [id]
        columns:
          id: text
          name: text
          first_sku: text
          qty: integer
          price: real
          active: boolean
          at: timestamp
          doc: json
          who: text
          stream: text
          typ: text
          eid: text
          pos: integer
          rev: integer
          day: text
          note: text
          renames: integer
          lit_s: text
          lit_n: integer
          lit_null: text
      - name: counts
        key: [cat]
        columns: {cat: text, n: integer, total: real}
    on:
      ThingAdded:
        - upsert: things
          set:
            id: $event.streamId
            name: $.name
            first_sku: $.lines[0].sku
            qty: $.lines[1].qty
            price: $.price
            active: $.active
            at: $.at
            doc: $.doc
            who: $meta.user.name
            stream: $event.stream
            typ: $event.type
            eid: $event.id
            pos: $event.position
            rev: $event.revision
            day: $event.date
            note: $.note?
            lit_s: "'it''s'"
            lit_n: 42
            lit_null: null
        - upsert: counts
          set: {cat: $event.category}
          add: {n: 1, total: $.price}
      ThingRenamed:
        - update: things
          where: {id: $event.streamId}
          set: {name: $.name}
          add: {renames: 1}
      ThingRemoved:
        - delete: things
          where: {id: $event.streamId}
`

func TestDeclarativeActionsAndValues(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		s := e.store
		added := appendJSON(t, s, "thing-a", "ThingAdded", `{"name":"A","lines":[{"sku":"s1","qty":1},{"sku":"s2","qty":7}],"price":2.5,"active":true,"at":"2025-01-31T09:00:00+01:00","doc":{"x":[1,2]}}`, `{"user":{"name":"ann"}}`)
		appendJSON(t, s, "thing-b", "ThingAdded", `{"name":"B","lines":[{"sku":"s3"},{"qty":"3"}],"price":1,"active":false,"at":"2025-02-01T00:00:00Z","doc":null,"note":"hi"}`, `{"user":{"name":"bob"}}`)
		appendJSON(t, s, "thing-c", "ThingAdded", `{"name":"C","lines":[{"sku":"s4"},{"qty":1}],"price":0.5,"active":true,"at":"2025-02-01T00:00:00Z","doc":"d"}`, `{"user":{"name":"cy"}}`)
		appendJSON(t, s, "other-a", "ThingAdded", `{}`) // another category: left out
		appendJSON(t, s, "thing-a", "ThingRenamed", `{"name":"A2"}`)
		appendJSON(t, s, "thing-a", "ThingRenamed", `{"name":"A3"}`)
		appendJSON(t, s, "thing-c", "ThingRemoved", `{}`)
		appendJSON(t, s, "thing-zz", "ThingRenamed", `{"name":"nobody"}`) // no row: no error

		c := newConsolidator(t, e, thingsYAML)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, s)
		rows := readTable(t, c, "things")
		if len(rows) != 2 {
			t.Fatalf("things: %v, want rows a and b", rows)
		}
		a, b := rows[0], rows[1]
		evs := allEvents(t, s)
		want := map[string]string{
			"id": "a", "name": "A3", "first_sku": "s1", "qty": "7", "price": "2.5", "active": "1",
			"at": "2025-01-31T08:00:00Z", "doc": `{"x":[1,2]}`, "who": "ann", "stream": "thing-a", "typ": "ThingAdded",
			"eid": evs[0].ID.String(), "pos": "1", "rev": "0", "day": evs[0].Created.UTC().Format(time.DateOnly),
			"note": "NULL", "renames": "2", "lit_s": "it's", "lit_n": "42", "lit_null": "NULL",
		}
		_ = added
		for col, w := range want {
			got := a[col]
			if col == "doc" {
				got = strings.ReplaceAll(got, " ", "") // PostgreSQL's jsonb spaces it out
			}
			if col == "price" && got == "2.5" || got == w {
				continue
			}
			t.Errorf("things a.%s = %q, want %q", col, got, w)
		}
		if b["qty"] != "3" || b["note"] != "hi" || b["active"] != "0" || b["doc"] != "NULL" || b["renames"] != "NULL" || b["who"] != "bob" {
			t.Errorf("things b = %v", b)
		}
		counts := readTable(t, c, "counts")
		if len(counts) != 1 || counts[0]["cat"] != "thing" || counts[0]["n"] != "3" || counts[0]["total"] != "4" {
			t.Errorf("counts = %v, want thing: 3, 4", counts)
		}
	})
}

func TestAMissingFieldFailsTheProjectionNamingEventFieldAndPosition(t *testing.T) {
	forEachTarget(t, func(t *testing.T, e env) {
		appendJSON(t, e.store, "thing-a", "ThingAdded", `{"name":"A","lines":[{"sku":"s1"},{"qty":1}],"price":1,"active":true,"at":"2025-01-31T09:00:00Z","doc":1}`, `{"user":{"name":"ann"}}`)
		bad := appendJSON(t, e.store, "thing-b", "ThingAdded", `{"name":"B","lines":[{"sku":"s1"}],"price":1,"active":true,"at":"2025-01-31T09:00:00Z","doc":1}`, `{"user":{"name":"ann"}}`)
		c := newConsolidator(t, e, thingsYAML)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		var st consolidator.Status
		waitFor(t, "two failed runs", func() bool {
			var err error
			st, err = c.Status(context.Background(), "things")
			if err != nil {
				t.Fatal(err)
			}
			return st.Errors >= 2
		})
		for _, want := range []string{"ThingAdded", "position 2", "thing-b", "$.lines[1]", "$.lines[1].qty?"} {
			if !strings.Contains(st.LastError, want) {
				t.Errorf("LastError %q does not name %q", st.LastError, want)
			}
		}
		if st.LastErrorAt == nil || st.Position != 0 {
			t.Errorf("status %+v: want the error's time and nothing applied (the batch rolled back)", st)
		}
		_ = bad
	})
}

func TestInvalidEventsSkipLeavesOutWhatCannotBeApplied(t *testing.T) {
	const yaml = `
projections:
  - name: totals
    categories: [order]
    invalid_events: skip
    tables:
      - {name: totals, key: [id], columns: {id: text, total: integer, n: integer}}
    on:
      OrderPlaced:
        - upsert: totals
          set: {id: $.orderId, total: $.totalCents}
          add: {n: 1}
`
	forEachTarget(t, func(t *testing.T, e env) {
		appendJSON(t, e.store, "order-1", "OrderPlaced", `{"orderId":"1","totalCents":5}`)
		// Written by someone else: no orderId. Its totalCents must not be applied either.
		appendJSON(t, e.store, "order-2", "OrderPlaced", `{"total":42}`)
		appendJSON(t, e.store, "order-3", "OrderPlaced", `{"orderId":"3","totalCents":7}`)
		c := newConsolidator(t, e, yaml)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, c, e.store)
		rows := readTable(t, c, "totals")
		if len(rows) != 2 || rows[0]["id"] != "1" || rows[1]["id"] != "3" || rows[1]["total"] != "7" {
			t.Errorf("rows %v, want orders 1 and 3 only", rows)
		}
		st, err := c.Status(context.Background(), "totals")
		if err != nil {
			t.Fatal(err)
		}
		if st.Skipped == 0 || !strings.Contains(st.LastSkipped, "order-2") || st.Errors != 0 || st.LastSkippedAt == nil {
			t.Errorf("status %+v: want the skip counted and naming order-2, and no error", st)
		}
	})
}

func TestBadConfigsAreInvalidNamingTheField(t *testing.T) {
	base := func(on string) string {
		return `
projections:
  - name: p
    categories: [order]
    tables:
      - name: t
        key: [id]
        columns: {id: text, n: integer, s: text}
    on:
` + on
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"an unknown field is named", "projections:\n  - name: p\n    tabels: []\n", "tabels"},
		{"a bad projection name", strings.Replace(base("      E: [{upsert: t, set: {id: $.id}}]"), "name: p", "name: P-1", 1), "projections[0].name"},
		{"a bad table name", strings.Replace(base("      E: [{upsert: t, set: {id: $.id}}]"), "name: t", "name: order", 1), "tables[0].name"},
		{"a bad column type", strings.Replace(base("      E: [{upsert: t, set: {id: $.id}}]"), "n: integer", "n: int", 1), "columns.n"},
		{"a key that is no column", strings.Replace(base("      E: [{upsert: t, set: {id: $.id}}]"), "key: [id]", "key: [nope]", 1), "key"},
		{"an action on an unknown table", base("      E: [{upsert: u, set: {id: $.id}}]"), "on.E[0].upsert"},
		{"two verbs", base("      E: [{upsert: t, delete: t, set: {id: $.id}}]"), "exactly one of upsert"},
		{"an upsert without the key", base("      E: [{upsert: t, set: {s: $.id}}]"), "key column \"id\""},
		{"an unknown column", base("      E: [{upsert: t, set: {id: $.id, zz: $.x}}]"), "set.zz"},
		{"an unquoted string", base("      E: [{upsert: t, set: {id: placed}}]"), "quote a string as 'placed'"},
		{"an unknown event field", base("      E: [{upsert: t, set: {id: $event.nope}}]"), "$event.nope"},
		{"a bad path", base("      E: [{upsert: t, set: {id: \"$.a[x]\"}}]"), "array index"},
		{"add on a text column", base("      E: [{upsert: t, set: {id: $.id}, add: {s: 1}}]"), "add.s"},
		{"a literal of the wrong type", base("      E: [{upsert: t, set: {id: $.id, n: \"'x'\"}}]"), "set.n"},
		{"an update without where", base("      E: [{update: t, set: {s: $.id}}]"), ".where"},
		{"a delete with set", base("      E: [{delete: t, where: {id: $.id}, set: {s: $.x}}]"), "only where"},
		{"no actions at all", base("      {}"), "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := consolidator.ParseConfig([]byte(tc.yaml))
			if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig: %v; want Invalid naming %q", err, tc.want)
			}
		})
	}
	t.Run("a config without a target is invalid", func(t *testing.T) {
		if _, err := consolidator.New(openStore(t), consolidator.Config{}); !errors.Is(err, verity.ErrInvalid) {
			t.Fatalf("New: %v, want Invalid", err)
		}
		if _, err := consolidator.New(openStore(t), consolidator.Config{DSN: "mysql://x"}); !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "mysql://x") {
			t.Fatalf("New: %v, want Invalid naming the DSN", err)
		}
	})
}
