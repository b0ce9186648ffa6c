package inventory

import (
	"fmt"
	"strings"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// Commands of a product.
type (
	AddProduct struct {
		SKU, Name  string
		PriceCents int64
		Stock      int64
	}
	AddStock struct{ Qty int64 }
	// Reserve sets stock aside for an order; reserving again for the same order does
	// nothing.
	Reserve struct {
		OrderID string
		Qty     int64
	}
	// Release gives back an order's reservation (compensation); nothing when the order
	// holds none (never reserved, or released already).
	Release struct{ OrderID string }
)

// Errors of the decider; their kinds give the HTTP status.
var (
	ErrExists            = verity.Errorf(verity.Conflict, "product", "product exists already")
	ErrUnknownProduct    = verity.Errorf(verity.NotFound, "product", "no such product")
	ErrInsufficientStock = verity.Errorf(verity.Conflict, "product", "insufficient stock")
)

// Product is a product and its stock. Reservations (not served) holds the stock each
// order has reserved and not released: what makes Reserve and Release idempotent.
type Product struct {
	SKU          string           `json:"sku"`
	Name         string           `json:"name"`
	PriceCents   int64            `json:"priceCents"`
	Available    int64            `json:"available"`
	Reserved     int64            `json:"reserved"`
	Reservations map[string]int64 `json:"-"`
}

// Exists reports whether the product was added.
func (p Product) Exists() bool { return p.SKU != "" }

// Decider is the rules of a product's stock: what is available can be reserved, and
// only what an order reserved is released.
var Decider = sdk.Decider[Product, any, events.ProductEvent]{
	Initial: func() Product { return Product{Reservations: map[string]int64{}} },
	Decide: func(s Product, cmd any) ([]events.ProductEvent, error) {
		switch c := cmd.(type) {
		case AddProduct:
			if err := events.CheckSKU(c.SKU); err != nil {
				return nil, err
			}
			if s.Exists() {
				return nil, fmt.Errorf("sku %q: %w", c.SKU, ErrExists)
			}
			name := strings.TrimSpace(c.Name)
			switch {
			case name == "" || len(name) > 200:
				return nil, verity.Errorf(verity.Invalid, "product", "name %q must have 1 to 200 characters", c.Name)
			case c.PriceCents <= 0:
				return nil, verity.Errorf(verity.Invalid, "product", "priceCents must be positive, got %d", c.PriceCents)
			case c.Stock < 0:
				return nil, verity.Errorf(verity.Invalid, "product", "stock must not be negative, got %d", c.Stock)
			}
			out := []events.ProductEvent{events.ProductAdded{SKU: c.SKU, Name: name, PriceCents: c.PriceCents}}
			if c.Stock > 0 {
				out = append(out, events.StockAdded{SKU: c.SKU, Qty: c.Stock})
			}
			return out, nil
		case AddStock:
			if !s.Exists() {
				return nil, ErrUnknownProduct
			}
			if c.Qty <= 0 {
				return nil, verity.Errorf(verity.Invalid, "product", "qty must be positive, got %d", c.Qty)
			}
			return []events.ProductEvent{events.StockAdded{SKU: s.SKU, Qty: c.Qty}}, nil
		case Reserve:
			if !s.Exists() {
				return nil, ErrUnknownProduct
			}
			if _, ok := s.Reservations[c.OrderID]; ok {
				return nil, nil
			}
			if c.Qty <= 0 {
				return nil, verity.Errorf(verity.Invalid, "product", "qty must be positive, got %d", c.Qty)
			}
			if c.Qty > s.Available {
				return nil, fmt.Errorf("sku %q: %d available, %d wanted: %w", s.SKU, s.Available, c.Qty, ErrInsufficientStock)
			}
			return []events.ProductEvent{events.StockReserved{SKU: s.SKU, OrderID: c.OrderID, Qty: c.Qty}}, nil
		case Release:
			qty, ok := s.Reservations[c.OrderID]
			if !ok {
				return nil, nil
			}
			return []events.ProductEvent{events.StockReleased{SKU: s.SKU, OrderID: c.OrderID, Qty: qty}}, nil
		}
		return nil, verity.Errorf(verity.Invalid, "product", "unknown command %T", cmd)
	},
	Evolve: func(s Product, e events.ProductEvent) Product {
		switch e := e.(type) {
		case events.ProductAdded:
			s.SKU, s.Name, s.PriceCents = e.SKU, e.Name, e.PriceCents
		case events.StockAdded:
			s.Available += e.Qty
		case events.StockReserved:
			s.Available -= e.Qty
			s.Reserved += e.Qty
			s.Reservations = setReservation(s.Reservations, e.OrderID, e.Qty)
		case events.StockReleased:
			s.Available += e.Qty
			s.Reserved -= e.Qty
			s.Reservations = setReservation(s.Reservations, e.OrderID, -1)
		}
		return s
	},
}

// setReservation records an order's reservation (qty < 0: none). It changes the map in
// place: every fold starts from Initial's fresh map, so no two states share one, and
// copying it at every event would make a fold quadratic.
func setReservation(m map[string]int64, order string, qty int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	if qty < 0 {
		delete(m, order)
	} else {
		m[order] = qty
	}
	return m
}
