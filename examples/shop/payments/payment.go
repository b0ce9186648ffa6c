package payments

import (
	"context"
	"fmt"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// LimitCents is the fake provider's rule: it refuses any charge above this amount, so
// that tests (and demos) can make a payment fail on purpose.
const LimitCents = 100000

// Provider charges money. Charge must be idempotent per orderID (real providers take an
// idempotency key): the payments process may ask twice for the same order after a crash.
// A nil error is a successful charge; a *Declined error a refusal to record; any other
// error is a failure to retry.
type Provider interface {
	Charge(ctx context.Context, orderID string, amountCents int64) error
}

// Declined is a provider's refusal of a charge.
type Declined struct{ Reason string }

func (d *Declined) Error() string { return "payment declined: " + d.Reason }

// FakeProvider accepts every charge up to LimitCents and declines the others.
type FakeProvider struct{}

func (FakeProvider) Charge(ctx context.Context, orderID string, amountCents int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if amountCents > LimitCents {
		return &Declined{Reason: fmt.Sprintf("amount %d cents is over the limit of %d cents", amountCents, LimitCents)}
	}
	return nil
}

// RecordPayment records the provider's answer for an order: Reason empty means it went
// through.
type RecordPayment struct {
	OrderID     string
	AmountCents int64
	Reason      string
}

// Payment is an order's payment, as the service serves it.
type Payment struct {
	OrderID     string `json:"orderId"`
	Status      string `json:"status"` // "succeeded" or "failed"; "" before any
	AmountCents int64  `json:"amountCents"`
	Reason      string `json:"reason,omitempty"`
}

// Statuses of a payment.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Decider is the rule of a payment: recorded once; a second answer for the same order
// (a redelivery) changes nothing.
var Decider = sdk.Decider[Payment, any, events.PaymentEvent]{
	Decide: func(s Payment, cmd any) ([]events.PaymentEvent, error) {
		c, ok := cmd.(RecordPayment)
		if !ok {
			return nil, verity.Errorf(verity.Invalid, "payment", "unknown command %T", cmd)
		}
		if s.Status != "" {
			return nil, nil
		}
		if c.Reason != "" {
			return []events.PaymentEvent{events.PaymentFailed{OrderID: c.OrderID, AmountCents: c.AmountCents, Reason: c.Reason}}, nil
		}
		return []events.PaymentEvent{events.PaymentSucceeded{OrderID: c.OrderID, AmountCents: c.AmountCents}}, nil
	},
	Evolve: func(s Payment, e events.PaymentEvent) Payment {
		switch e := e.(type) {
		case events.PaymentSucceeded:
			return Payment{OrderID: e.OrderID, Status: StatusSucceeded, AmountCents: e.AmountCents}
		case events.PaymentFailed:
			return Payment{OrderID: e.OrderID, Status: StatusFailed, AmountCents: e.AmountCents, Reason: e.Reason}
		}
		return s
	},
}
