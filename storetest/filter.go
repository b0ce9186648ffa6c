package storetest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
)

// filterLog writes the log every filter test reads, and returns its events labelled
// "stream/type", in position order.
func filterLog(t testing.TB, st verity.Store) []string {
	t.Helper()
	write := func(stream, typ string) {
		mustAppend(t, st, stream, verity.Any(), event(typ, 0))
	}
	write("order-1", "OrderPlaced")                                        // 1
	write("customer-1", "CustomerRegistered")                              // 2
	write("order-2", "OrderPlaced")                                        // 3
	write("orderline-1", "LineAdded")                                      // 4
	write("order-1", "OrderShipped")                                       // 5
	write("inventory", "StockAdjusted")                                    // 6
	mustSetMetadata(t, st, "order-2", verity.Any(), verity.StreamMetadata{ // 7: $$order-2/$metadata
		Custom: map[string]json.RawMessage{"owner": json.RawMessage(`"sales"`)},
	})
	write("customer-1", "CustomerMoved") // 8
	return []string{
		"order-1/OrderPlaced", "customer-1/CustomerRegistered", "order-2/OrderPlaced", "orderline-1/LineAdded",
		"order-1/OrderShipped", "inventory/StockAdjusted", "$$order-2/$metadata", "customer-1/CustomerMoved",
	}
}

func labels(evs []verity.RecordedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Stream + "/" + e.Type
	}
	return out
}

func testFilter(t *testing.T, s *suite) {
	cases := []struct {
		name   string
		filter verity.Filter
		want   []int // positions
	}{
		{"the zero filter selects every event", verity.Filter{}, []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{"a stream prefix selects the streams that start with it", verity.Filter{StreamPrefixes: []string{"order"}}, []int{1, 3, 4, 5}},
		{"several stream prefixes select any of them", verity.Filter{StreamPrefixes: []string{"order-", "inv"}}, []int{1, 3, 5, 6}},
		{"a stream prefix of $$ selects metadata streams", verity.Filter{StreamPrefixes: []string{"$$"}}, []int{7}},
		{"a category selects the streams named category-id only", verity.Filter{Categories: []string{"order"}}, []int{1, 3, 5}},
		{"several categories select any of them", verity.Filter{Categories: []string{"order", "customer"}}, []int{1, 2, 3, 5, 8}},
		{"a category never matches a stream without a dash", verity.Filter{Categories: []string{"inventory"}}, nil},
		{"a stream regexp selects matching streams", verity.Filter{StreamRegexp: `^order-\d+$`}, []int{1, 3, 5}},
		{"a stream regexp matches anywhere in the name unless anchored", verity.Filter{StreamRegexp: `line`}, []int{4}},
		{"an event type selects events of that type", verity.Filter{EventTypes: []string{"OrderPlaced"}}, []int{1, 3}},
		{"several event types select any of them", verity.Filter{EventTypes: []string{"OrderPlaced", "CustomerMoved"}}, []int{1, 3, 8}},
		{"an event type must match whole", verity.Filter{EventTypes: []string{"Order"}}, nil},
		{"an event type prefix selects types that start with it", verity.Filter{EventTypePrefixes: []string{"Customer"}}, []int{2, 8}},
		{"several event type prefixes select any of them", verity.Filter{EventTypePrefixes: []string{"Order", "Stock"}}, []int{1, 3, 5, 6}},
		{"an event type prefix of $ selects system events", verity.Filter{EventTypePrefixes: []string{"$"}}, []int{7}},
		{"an event type regexp selects matching types", verity.Filter{EventTypeRegexp: `Placed$|Moved$`}, []int{1, 3, 8}},
		{"excluding system events leaves out $ types", verity.Filter{ExcludeSystemEvents: true}, []int{1, 2, 3, 4, 5, 6, 8}},
		{"a category and an event type must both match", verity.Filter{Categories: []string{"order"}, EventTypes: []string{"OrderShipped"}}, []int{5}},
		{"a stream prefix and an event type prefix must both match", verity.Filter{StreamPrefixes: []string{"order"}, EventTypePrefixes: []string{"Line"}}, []int{4}},
		{"a category and an event type regexp must both match", verity.Filter{Categories: []string{"customer"}, EventTypeRegexp: `Moved`}, []int{8}},
		{"a stream regexp and excluded system events must both match", verity.Filter{StreamRegexp: `2`, ExcludeSystemEvents: true}, []int{3}},
		{"fields that select disjoint events select nothing", verity.Filter{Categories: []string{"customer"}, EventTypes: []string{"OrderPlaced"}}, nil},
		{"every field set at once must all match", verity.Filter{
			StreamPrefixes: []string{"order"}, Categories: []string{"order"}, StreamRegexp: `-1$`,
			EventTypes: []string{"OrderPlaced", "OrderShipped"}, EventTypePrefixes: []string{"Order"}, EventTypeRegexp: `Ship`,
			ExcludeSystemEvents: true,
		}, []int{5}},
	}
	for _, c := range cases {
		s.test(t, c.name, func(t *testing.T, st verity.Store) {
			all := filterLog(t, st)
			var want []string
			for _, p := range c.want {
				want = append(want, all[p-1])
			}
			got, err := st.ReadAll(t.Context(), verity.ReadAllOptions{Filter: c.filter})
			if err != nil {
				t.Fatalf("ReadAll forwards: %v", err)
			}
			requireLabels(t, got, want, "ReadAll forwards")
			got, err = st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Filter: c.filter})
			if err != nil {
				t.Fatalf("ReadAll backwards: %v", err)
			}
			requireLabels(t, got, reversed(want), "ReadAll backwards")
			// A limit counts the events that pass the filter, not those it skips.
			var paged []verity.RecordedEvent
			for from := uint64(0); ; {
				page, err := st.ReadAll(t.Context(), verity.ReadAllOptions{From: from, Limit: 1, Filter: c.filter})
				if err != nil {
					t.Fatalf("ReadAll from %d limit 1: %v", from, err)
				}
				if len(page) == 0 {
					break
				}
				if len(page) > 1 {
					t.Fatalf("ReadAll with limit 1 returned %d events", len(page))
				}
				paged = append(paged, page...)
				from = page[0].Position + 1
			}
			requireLabels(t, paged, want, "ReadAll forwards one event at a time")
		})
	}

	for _, f := range []verity.Filter{{StreamRegexp: `order-(`}, {EventTypeRegexp: `[Order`}} {
		name := "a bad stream regexp is invalid"
		if f.EventTypeRegexp != "" {
			name = "a bad event type regexp is invalid"
		}
		s.test(t, name, func(t *testing.T, st verity.Store) {
			mustAppend(t, st, "order-1", verity.Any(), event("OrderPlaced", 0))
			_, err := st.ReadAll(t.Context(), verity.ReadAllOptions{Filter: f})
			requireKind(t, err, verity.Invalid, "ReadAll with a bad regexp")
			_, err = st.ReadAll(t.Context(), verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Filter: f})
			requireKind(t, err, verity.Invalid, "ReadAll backwards with a bad regexp")
		})
	}
}

func requireLabels(t testing.TB, got []verity.RecordedEvent, want []string, what string) {
	t.Helper()
	if g := labels(got); !slices.Equal(g, want) {
		t.Fatalf("%s: got [%s], want [%s]", what, strings.Join(g, " "), strings.Join(want, " "))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Position == got[i-1].Position {
			t.Fatalf("%s: position %d returned twice", what, got[i].Position)
		}
	}
}
