package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// reserveAttempts is how many times a reservation is tried while product streams move
// under it (other orders reserving); past it the event goes back to the group.
const reserveAttempts = 8

// Process is the inventory's process manager: on OrderPlaced it reserves the stock of
// every line at once, or records why it cannot; on OrderCancelled it releases what it
// reserved (compensation). It is idempotent under redelivery: a reservation is decided
// once (its stream is written once, atomically with the stock it takes), and a release
// only gives back what an order still holds, under command ids derived from the event.
type Process struct {
	store    verity.Store
	reg      *sdk.Registry
	products *sdk.CommandHandler[Product, any, events.ProductEvent]
}

// NewProcess returns the process manager over store.
func NewProcess(store verity.Store, reg *sdk.Registry) (*Process, error) {
	h, err := sdk.NewCommandHandler(store, reg, Decider, sdk.CommandHandlerConfig{})
	if err != nil {
		return nil, err
	}
	return &Process{store: store, reg: reg, products: h}, nil
}

// Handle is the HandlerFunc of the process's consumer group.
func (p *Process) Handle(ctx context.Context, e sdk.Event) error {
	switch d := e.Data.(type) {
	case events.OrderPlaced:
		if err := checkOrderEvent(e, d.OrderID); err != nil {
			return err
		}
		return p.reserve(ctx, e, d)
	case events.OrderCancelled:
		if err := checkOrderEvent(e, d.OrderID); err != nil {
			return err
		}
		return p.release(ctx, e, d)
	}
	return nil
}

// checkOrderEvent parks an order event that is not the orders service's: its order id is
// not a UUID, or not that of its stream (anyone allowed to write to order-* could append
// one). Reserving for it would write streams of an order nobody placed.
func checkOrderEvent(e sdk.Event, orderID string) error {
	if err := events.CheckOrderID(orderID); err != nil {
		return sdk.Park(fmt.Errorf("%s in %s: %w", e.Type, e.Recorded.Stream, err))
	}
	if e.Recorded.Stream != events.OrderStream(orderID) {
		return sdk.Park(fmt.Errorf("%s in %s names order %s of another stream", e.Type, e.Recorded.Stream, orderID))
	}
	return nil
}

// reserve takes the stock of every line of the order, or none: one AppendMulti writes
// StockReserved to each product stream, at the revision its decision was made on, and
// ReservationSucceeded to the reservation stream, which must not exist yet. A reservation
// stream that exists means the order was handled (the append is atomic): a redelivered
// OrderPlaced stops there.
func (p *Process) reserve(ctx context.Context, e sdk.Event, placed events.OrderPlaced) error {
	stream := events.ReservationStream(placed.OrderID)
	md := sdk.CausedBy(e.Recorded)
	lines := mergeLines(placed.Lines)
	reserveID := sdk.CommandID(e.Recorded.ID, "reserve")
	var lastErr error
	for range reserveAttempts {
		done, err := p.reserved(ctx, stream)
		if err != nil || done {
			return err
		}
		appends := make([]verity.StreamAppend, 0, len(lines)+1)
		var refusal error
		for i, l := range lines {
			ps := events.ProductStream(l.SKU)
			var prod Product
			var st verity.StreamState
			if events.CheckSKU(l.SKU) == nil {
				if prod, st, err = p.products.State(ctx, ps); err != nil {
					return err
				}
			}
			evs, err := Decider.Decide(prod, Reserve{OrderID: placed.OrderID, Qty: l.Qty})
			if err != nil {
				if errors.Is(err, ErrUnknownProduct) {
					err = fmt.Errorf("unknown sku %q", l.SKU)
				}
				refusal = err
				break
			}
			if len(evs) == 0 {
				continue // cannot happen without the reservation stream; harmless
			}
			data, err := p.reg.Encode(evs[0], md)
			if err != nil {
				return err
			}
			data.ID = sdk.EventID(reserveID, i)
			expected := verity.NoStream()
			if st.Exists {
				expected = verity.Exact(st.Revision)
			}
			appends = append(appends, verity.StreamAppend{Stream: ps, Expected: expected, Events: []verity.EventData{data}})
		}
		if refusal != nil {
			return p.record(ctx, stream, e, "reservation-failed", events.ReservationFailed{OrderID: placed.OrderID, Reason: refusal.Error()})
		}
		ok, err := p.reg.Encode(events.ReservationSucceeded{OrderID: placed.OrderID, Lines: lines, TotalCents: placed.TotalCents}, md)
		if err != nil {
			return err
		}
		ok.ID = sdk.EventID(reserveID, len(lines))
		appends = append(appends, verity.StreamAppend{Stream: stream, Expected: verity.NoStream(), Events: []verity.EventData{ok}})
		_, err = p.store.AppendMulti(ctx, appends...)
		if !errors.Is(err, verity.ErrConflict) {
			return err
		}
		lastErr = err // a product moved, or a concurrent delivery won: look again
	}
	return fmt.Errorf("reserve stock for order %q: %w", placed.OrderID, lastErr)
}

// reserved reports whether the order's reservation was decided already.
func (p *Process) reserved(ctx context.Context, stream string) (bool, error) {
	_, err := p.store.ReadStream(ctx, stream, verity.ReadStreamOptions{Limit: 1})
	if errors.Is(err, verity.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// record appends the only event of a reservation stream; a stream that has one already
// (a concurrent delivery) is left as it is.
func (p *Process) record(ctx context.Context, stream string, cause sdk.Event, key string, v any) error {
	data, err := p.reg.Encode(v, sdk.CausedBy(cause.Recorded))
	if err != nil {
		return err
	}
	data.ID = sdk.EventID(sdk.CommandID(cause.Recorded.ID, key), 0)
	_, err = p.store.Append(ctx, stream, verity.NoStream(), data)
	if errors.Is(err, verity.ErrConflict) {
		return nil
	}
	return err
}

// release gives back the stock a cancelled order reserved. An order whose reservation
// failed (or never happened) holds nothing.
func (p *Process) release(ctx context.Context, e sdk.Event, cancelled events.OrderCancelled) error {
	recs, err := p.store.ReadStream(ctx, events.ReservationStream(cancelled.OrderID), verity.ReadStreamOptions{Limit: 1})
	if errors.Is(err, verity.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := p.reg.Decode(recs[0])
	if err != nil {
		return sdk.Park(err)
	}
	ok, isOK := r.Data.(events.ReservationSucceeded)
	if !isOK {
		return nil
	}
	for _, l := range ok.Lines {
		if _, err := p.products.Handle(ctx, events.ProductStream(l.SKU), Release{OrderID: cancelled.OrderID},
			sdk.ReactingTo(e, "release-"+l.SKU)); err != nil {
			return err
		}
	}
	return nil
}

// mergeLines adds up the lines of each sku (a stream may appear once in an AppendMulti)
// and orders them by sku, so that every delivery builds the same appends.
func mergeLines(lines []events.OrderLine) []events.ReservedLine {
	var out []events.ReservedLine
	for _, l := range lines {
		i := slices.IndexFunc(out, func(r events.ReservedLine) bool { return r.SKU == l.SKU })
		if i < 0 {
			out = append(out, events.ReservedLine{SKU: l.SKU, Qty: l.Qty})
		} else {
			out[i].Qty += l.Qty
		}
	}
	slices.SortFunc(out, func(a, b events.ReservedLine) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}
