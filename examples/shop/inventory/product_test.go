package inventory

import (
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestProductDecider(t *testing.T) {
	added := events.ProductAdded{SKU: "mug", Name: "Mug", PriceCents: 1200}
	stocked := events.StockAdded{SKU: "mug", Qty: 5}
	t.Run("a product is added once, with its first stock", func(t *testing.T) {
		sdktest.Given(t, Decider).When(AddProduct{SKU: "mug", Name: "Mug", PriceCents: 1200, Stock: 5}).Then(added, stocked).
			ThenState(Product{SKU: "mug", Name: "Mug", PriceCents: 1200, Available: 5, Reservations: map[string]int64{}})
		sdktest.Given(t, Decider).When(AddProduct{SKU: "mug", Name: "Mug", PriceCents: 1200}).Then(added)
		sdktest.Given(t, Decider, added).When(AddProduct{SKU: "mug", Name: "Mug", PriceCents: 1200}).ThenError(ErrExists)
	})
	t.Run("bad products are refused", func(t *testing.T) {
		for _, c := range []AddProduct{
			{SKU: "Mug", Name: "Mug", PriceCents: 1},
			{SKU: "mug-1", Name: "Mug", PriceCents: 1},
			{SKU: "", Name: "Mug", PriceCents: 1},
			{SKU: "mug", Name: " ", PriceCents: 1},
			{SKU: "mug", Name: "Mug", PriceCents: 0},
			{SKU: "mug", Name: "Mug", PriceCents: 1, Stock: -1},
		} {
			sdktest.Given(t, Decider).When(c).ThenError(verity.ErrInvalid)
		}
	})
	t.Run("stock is added to a known product only", func(t *testing.T) {
		sdktest.Given(t, Decider, added).When(AddStock{Qty: 3}).Then(events.StockAdded{SKU: "mug", Qty: 3})
		sdktest.Given(t, Decider).When(AddStock{Qty: 3}).ThenError(ErrUnknownProduct)
		sdktest.Given(t, Decider, added).When(AddStock{Qty: 0}).ThenError(verity.ErrInvalid)
	})
	t.Run("a reservation takes available stock, once per order", func(t *testing.T) {
		reserved := events.StockReserved{SKU: "mug", OrderID: "o1", Qty: 2}
		sdktest.Given(t, Decider, added, stocked).When(Reserve{OrderID: "o1", Qty: 2}).Then(reserved).
			ThenState(Product{SKU: "mug", Name: "Mug", PriceCents: 1200, Available: 3, Reserved: 2, Reservations: map[string]int64{"o1": 2}})
		sdktest.Given(t, Decider, added, stocked, reserved).When(Reserve{OrderID: "o1", Qty: 2}).Then()
	})
	t.Run("a reservation beyond the stock is refused", func(t *testing.T) {
		sdktest.Given(t, Decider, added, stocked).When(Reserve{OrderID: "o1", Qty: 6}).ThenError(ErrInsufficientStock)
		sdktest.Given(t, Decider).When(Reserve{OrderID: "o1", Qty: 1}).ThenError(ErrUnknownProduct)
	})
	t.Run("a release gives back what the order reserved, once", func(t *testing.T) {
		reserved := events.StockReserved{SKU: "mug", OrderID: "o1", Qty: 2}
		released := events.StockReleased{SKU: "mug", OrderID: "o1", Qty: 2}
		sdktest.Given(t, Decider, added, stocked, reserved).When(Release{OrderID: "o1"}).Then(released).
			ThenState(Product{SKU: "mug", Name: "Mug", PriceCents: 1200, Available: 5, Reservations: map[string]int64{}})
		sdktest.Given(t, Decider, added, stocked, reserved, released).When(Release{OrderID: "o1"}).Then()
		sdktest.Given(t, Decider, added, stocked).When(Release{OrderID: "o1"}).Then()
	})
}
