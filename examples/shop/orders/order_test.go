package orders

import (
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestOrderDecider(t *testing.T) {
	lines := []events.OrderLine{{SKU: "mug", Qty: 2, PriceCents: 1200}, {SKU: "tea", Qty: 1, PriceCents: 500}}
	placed := events.OrderPlaced{OrderID: "o1", CustomerID: "c1", Lines: lines, TotalCents: 2900, ItemCount: 3}
	t.Run("an order is placed once, with its totals", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Place{OrderID: "o1", CustomerID: "c1", Lines: lines}).Then(placed).
			ThenState(Order{OrderID: "o1", CustomerID: "c1", Status: StatusPlaced, Lines: lines, TotalCents: 2900, ItemCount: 3})
		sdktest.Given(t, Decider, placed).When(Place{OrderID: "o1", CustomerID: "c1", Lines: lines}).ThenError(ErrExists)
	})
	t.Run("bad orders are refused", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Place{OrderID: "o1", CustomerID: "c1"}).ThenError(verity.ErrInvalid)
		sdktest.Given(t, Decider).When(Place{OrderID: "o1", CustomerID: "c1", Lines: []events.OrderLine{{SKU: "mug", Qty: 0, PriceCents: 1}}}).ThenError(verity.ErrInvalid)
		sdktest.Given(t, Decider).When(Place{OrderID: "o1", CustomerID: "c1", Lines: []events.OrderLine{{SKU: "mug", Qty: MaxQty + 1, PriceCents: 1}}}).ThenError(verity.ErrInvalid)
	})
	t.Run("a placed order is confirmed once", func(t *testing.T) {
		confirmed := events.OrderConfirmed{OrderID: "o1", CustomerID: "c1", TotalCents: 2900, ItemCount: 3}
		sdktest.Given(t, Decider, placed).When(Confirm{}).Then(confirmed)
		sdktest.Given(t, Decider, placed, confirmed).When(Confirm{}).Then()
	})
	t.Run("a placed order is cancelled once, with its reason", func(t *testing.T) {
		cancelled := events.OrderCancelled{OrderID: "o1", CustomerID: "c1", Reason: "no stock", TotalCents: 2900}
		sdktest.Given(t, Decider, placed).When(Cancel{Reason: "no stock"}).Then(cancelled).
			ThenState(Order{OrderID: "o1", CustomerID: "c1", Status: StatusCancelled, Lines: lines, TotalCents: 2900, ItemCount: 3, Reason: "no stock"})
		sdktest.Given(t, Decider, placed, cancelled).When(Cancel{Reason: "again"}).Then()
	})
	t.Run("a closed order ignores the other outcome", func(t *testing.T) {
		sdktest.Given(t, Decider, placed, events.OrderCancelled{OrderID: "o1", Reason: "x"}).When(Confirm{}).Then()
		sdktest.Given(t, Decider, placed, events.OrderConfirmed{OrderID: "o1"}).When(Cancel{Reason: "late"}).Then()
	})
	t.Run("outcomes need an order", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Confirm{}).ThenError(ErrUnknownOrder)
		sdktest.Given(t, Decider).When(Cancel{Reason: "x"}).ThenError(ErrUnknownOrder)
	})
}
