package payments

import (
	"context"
	"net/http"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/examples/shop/internal/shoptest"
	"github.com/verity-dev/verity/sdk"
)

// countingProvider is the fake provider, counting the charges it is asked for.
type countingProvider struct{ n int }

func (p *countingProvider) Charge(ctx context.Context, orderID string, amount int64) error {
	p.n++
	return FakeProvider{}.Charge(ctx, orderID, amount)
}

func TestPaymentsChargeOnceAndServe(t *testing.T) {
	ctx := context.Background()
	store, groups := shoptest.Open(t)
	provider := &countingProvider{}
	s, err := New(Config{Store: store, Groups: groups, Logger: shoptest.Quiet, Provider: provider})
	if err != nil {
		t.Fatal(err)
	}
	reg := events.NewRegistry()
	const ok, declined = "6a0e7f52-5b8e-4f0c-8c56-3c1b9b1f0a01", "6a0e7f52-5b8e-4f0c-8c56-3c1b9b1f0a02"
	for _, r := range []events.ReservationSucceeded{{OrderID: ok, TotalCents: 500}, {OrderID: declined, TotalCents: LimitCents + 1}} {
		data, err := reg.Encode(r, sdk.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, events.ReservationStream(r.OrderID), verity.NoStream(), data); err != nil {
			t.Fatal(err)
		}
		recs, err := store.ReadStream(ctx, events.ReservationStream(r.OrderID), verity.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := reg.Decode(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a delivery and a redelivery
			if err := s.Charge(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if provider.n != 2 {
		t.Errorf("the provider was asked %d times for 2 orders delivered twice each", provider.n)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	url := "http://" + s.Addr()
	var p Payment
	shoptest.Call(t, "GET", url+"/payments/"+ok, nil, http.StatusOK, &p)
	if p != (Payment{OrderID: ok, Status: StatusSucceeded, AmountCents: 500}) {
		t.Errorf("GET %s = %+v", ok, p)
	}
	shoptest.Call(t, "GET", url+"/payments/"+declined, nil, http.StatusOK, &p)
	if p.Status != StatusFailed || p.Reason == "" {
		t.Errorf("GET %s = %+v, want failed with a reason", declined, p)
	}
	shoptest.Call(t, "GET", url+"/payments/6a0e7f52-5b8e-4f0c-8c56-3c1b9b1f0a03", nil, http.StatusNotFound, nil)
	shoptest.Call(t, "GET", url+"/payments/nope", nil, http.StatusBadRequest, nil)
	shoptest.Call(t, "GET", url+"/healthz", nil, http.StatusOK, nil)
	for _, id := range []string{ok, declined} {
		recs, err := store.ReadStream(ctx, events.PaymentStream(id), verity.ReadStreamOptions{})
		if err != nil || len(recs) != 1 {
			t.Errorf("payment-%s: %d events, %v; want 1", id, len(recs), err)
		}
	}
}
