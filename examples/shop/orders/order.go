package orders

import (
	"context"
	"fmt"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// Commands of an order. Place carries lines already priced (from the orders service's
// view of the products): the decider does no I/O.
type (
	Place struct {
		OrderID, CustomerID string
		Lines               []events.OrderLine
	}
	Confirm struct{}
	Cancel  struct{ Reason string }
)

// MaxQty bounds the quantity of one line.
const MaxQty = 1000

// Errors of the decider.
var (
	ErrExists       = verity.Errorf(verity.Conflict, "order", "order exists already")
	ErrUnknownOrder = verity.Errorf(verity.NotFound, "order", "no such order")
)

// Statuses of an order.
const (
	StatusPlaced    = "placed"
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// Order is an order's state: what deciding needs, and what GET /orders/{id} serves.
type Order struct {
	OrderID    string             `json:"orderId"`
	CustomerID string             `json:"customerId"`
	Status     string             `json:"status"`
	Lines      []events.OrderLine `json:"lines"`
	TotalCents int64              `json:"totalCents"`
	ItemCount  int64              `json:"itemCount"`
	Reason     string             `json:"reason,omitempty"`
}

// Decider is an order's life: placed once, then confirmed or cancelled once; a late or
// repeated outcome changes nothing.
var Decider = sdk.Decider[Order, any, events.OrderEvent]{
	Decide: func(s Order, cmd any) ([]events.OrderEvent, error) {
		switch c := cmd.(type) {
		case Place:
			if s.Status != "" {
				return nil, ErrExists
			}
			if len(c.Lines) == 0 {
				return nil, verity.Errorf(verity.Invalid, "order", "an order needs at least one line")
			}
			var total, items int64
			for _, l := range c.Lines {
				if l.Qty <= 0 || l.Qty > MaxQty {
					return nil, verity.Errorf(verity.Invalid, "order", "sku %q: qty must be 1 to %d, got %d", l.SKU, MaxQty, l.Qty)
				}
				if l.PriceCents <= 0 {
					return nil, verity.Errorf(verity.Invalid, "order", "sku %q: price must be positive, got %d", l.SKU, l.PriceCents)
				}
				total += l.Qty * l.PriceCents
				items += l.Qty
			}
			return []events.OrderEvent{events.OrderPlaced{
				OrderID: c.OrderID, CustomerID: c.CustomerID, Lines: c.Lines, TotalCents: total, ItemCount: items,
			}}, nil
		case Confirm:
			switch s.Status {
			case "":
				return nil, ErrUnknownOrder
			case StatusPlaced:
				return []events.OrderEvent{events.OrderConfirmed{
					OrderID: s.OrderID, CustomerID: s.CustomerID, TotalCents: s.TotalCents, ItemCount: s.ItemCount,
				}}, nil
			}
			return nil, nil
		case Cancel:
			switch s.Status {
			case "":
				return nil, ErrUnknownOrder
			case StatusPlaced:
				return []events.OrderEvent{events.OrderCancelled{
					OrderID: s.OrderID, CustomerID: s.CustomerID, Reason: c.Reason, TotalCents: s.TotalCents,
				}}, nil
			}
			return nil, nil
		}
		return nil, verity.Errorf(verity.Invalid, "order", "unknown command %T", cmd)
	},
	Evolve: func(s Order, e events.OrderEvent) Order {
		switch e := e.(type) {
		case events.OrderPlaced:
			return Order{OrderID: e.OrderID, CustomerID: e.CustomerID, Status: StatusPlaced, Lines: e.Lines,
				TotalCents: e.TotalCents, ItemCount: e.ItemCount}
		case events.OrderConfirmed:
			s.Status = StatusConfirmed
		case events.OrderCancelled:
			s.Status, s.Reason = StatusCancelled, e.Reason
		}
		return s
	},
}

// Outcomes is the orders' process manager: it closes an order once inventory and
// payments have spoken. ReservationFailed and PaymentFailed cancel it, PaymentSucceeded
// confirms it. The commands carry ids derived from the event (sdk.ReactingTo) and the
// decider ignores an outcome for an order already closed: a redelivery changes nothing.
func Outcomes(orders *sdk.CommandHandler[Order, any, events.OrderEvent]) sdk.HandlerFunc {
	return func(ctx context.Context, e sdk.Event) error {
		var id string
		var cmd any
		switch d := e.Data.(type) {
		case events.ReservationFailed:
			id, cmd = d.OrderID, Cancel{Reason: "no stock: " + d.Reason}
		case events.PaymentFailed:
			id, cmd = d.OrderID, Cancel{Reason: "payment failed: " + d.Reason}
		case events.PaymentSucceeded:
			id, cmd = d.OrderID, Confirm{}
		default:
			return nil
		}
		if err := events.CheckOrderID(id); err != nil {
			return sdk.Park(fmt.Errorf("%s: %w", e.Type, err))
		}
		_, err := orders.Handle(ctx, events.OrderStream(id), cmd, sdk.ReactingTo(e, "outcome"))
		return err
	}
}
