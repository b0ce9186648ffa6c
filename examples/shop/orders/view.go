package orders

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// The orders service keeps its own view of the customers and products it needs to accept
// an order, and of its orders to list them, in memory: it is folded from the log at every
// start (replay) and then follows it. Orders therefore never calls the customers or the
// inventory service, and keeps taking orders while they are down. Memory and start time
// grow with the log; a service that outgrows them keeps the same view in SQL with package
// sdk/projection, where it survives restarts.
var viewFilter = verity.Filter{
	Categories: []string{events.CustomerCategory, events.ProductCategory, events.OrderCategory},
	EventTypes: []string{"CustomerRegistered", "CustomerUpdated", "ProductAdded", "OrderPlaced", "OrderConfirmed", "OrderCancelled"},
}

// product is what orders knows of a product: enough to price a line.
type product struct {
	Name       string
	PriceCents int64
}

// Summary is an order as GET /orders lists it.
type Summary struct {
	OrderID    string `json:"orderId"`
	CustomerID string `json:"customerId"`
	Status     string `json:"status"`
	TotalCents int64  `json:"totalCents"`
	ItemCount  int64  `json:"itemCount"`
	Reason     string `json:"reason,omitempty"`
	position   uint64 // of OrderPlaced: lists are in the order orders were placed
}

type view struct {
	mu        sync.RWMutex
	customers map[string]string // id -> name
	products  map[string]product
	orders    map[string]*Summary
}

func newView() *view {
	return &view{customers: map[string]string{}, products: map[string]product{}, orders: map[string]*Summary{}}
}

func (v *view) apply(e sdk.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch d := e.Data.(type) {
	case events.CustomerRegistered:
		v.customers[d.CustomerID] = d.Name
	case events.CustomerUpdated:
		v.customers[d.CustomerID] = d.Name
	case events.ProductAdded:
		v.products[d.SKU] = product{Name: d.Name, PriceCents: d.PriceCents}
	case events.OrderPlaced:
		v.orders[d.OrderID] = &Summary{OrderID: d.OrderID, CustomerID: d.CustomerID, Status: StatusPlaced,
			TotalCents: d.TotalCents, ItemCount: d.ItemCount, position: e.Recorded.Position}
	case events.OrderConfirmed:
		if o := v.orders[d.OrderID]; o != nil {
			o.Status = StatusConfirmed
		}
	case events.OrderCancelled:
		if o := v.orders[d.OrderID]; o != nil {
			o.Status, o.Reason = StatusCancelled, d.Reason
		}
	}
}

func (v *view) customer(id string) (string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	name, ok := v.customers[id]
	return name, ok
}

func (v *view) product(sku string) (product, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p, ok := v.products[sku]
	return p, ok
}

// ordersOf lists the orders of a customer ("" for everyone's), oldest first.
func (v *view) ordersOf(customerID string) []Summary {
	v.mu.RLock()
	out := []Summary{}
	for _, o := range v.orders {
		if customerID == "" || o.CustomerID == customerID {
			out = append(out, *o)
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(a.position, b.position), strings.Compare(a.OrderID, b.OrderID))
	})
	return out
}
