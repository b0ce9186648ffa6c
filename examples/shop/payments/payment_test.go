package payments

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestPaymentDecider(t *testing.T) {
	t.Run("a payment is recorded once", func(t *testing.T) {
		ok := events.PaymentSucceeded{OrderID: "o1", AmountCents: 500}
		sdktest.Given(t, Decider).When(RecordPayment{OrderID: "o1", AmountCents: 500}).Then(ok).
			ThenState(Payment{OrderID: "o1", Status: StatusSucceeded, AmountCents: 500})
		sdktest.Given(t, Decider, ok).When(RecordPayment{OrderID: "o1", AmountCents: 500}).Then()
		sdktest.Given(t, Decider, ok).When(RecordPayment{OrderID: "o1", AmountCents: 500, Reason: "late"}).Then()
	})
	t.Run("a declined payment is recorded with its reason", func(t *testing.T) {
		sdktest.Given(t, Decider).When(RecordPayment{OrderID: "o1", AmountCents: 500, Reason: "no"}).
			Then(events.PaymentFailed{OrderID: "o1", AmountCents: 500, Reason: "no"}).
			ThenState(Payment{OrderID: "o1", Status: StatusFailed, AmountCents: 500, Reason: "no"})
	})
}

func TestFakeProviderDeclinesOverTheLimit(t *testing.T) {
	ctx := context.Background()
	if err := (FakeProvider{}).Charge(ctx, "o1", LimitCents); err != nil {
		t.Errorf("a charge of exactly the limit: %v", err)
	}
	var d *Declined
	if err := (FakeProvider{}).Charge(ctx, "o1", LimitCents+1); !errors.As(err, &d) {
		t.Errorf("a charge over the limit: %v, want declined", err)
	}
}
