package events

import (
	"regexp"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
)

// Stream categories. A stream is "<category>-<id>".
const (
	CustomerCategory     = "customer"     // customer-<customerId>, owner: customers
	ProductCategory      = "product"      // product-<sku>, owner: inventory
	OrderCategory        = "order"        // order-<orderId>, owner: orders
	ReservationCategory  = "reservation"  // reservation-<orderId>, owner: inventory
	PaymentCategory      = "payment"      // payment-<orderId>, owner: payments
	OrderCommandCategory = "ordercommand" // ordercommand-<commandId>: commands for orders
)

// PlaceOrderType is the command type of PlaceOrder in OrderCommandCategory.
const PlaceOrderType = "PlaceOrder"

// Stream names.
func CustomerStream(id string) string    { return CustomerCategory + "-" + id }
func ProductStream(sku string) string    { return ProductCategory + "-" + sku }
func OrderStream(id string) string       { return OrderCategory + "-" + id }
func ReservationStream(id string) string { return ReservationCategory + "-" + id }
func PaymentStream(id string) string     { return PaymentCategory + "-" + id }

// The events of a customer (customer-<customerId>).
type CustomerEvent interface{ customerEvent() }

type CustomerRegistered struct {
	CustomerID string `json:"customerId"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

type CustomerUpdated struct {
	CustomerID string `json:"customerId"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

func (CustomerRegistered) customerEvent() {}
func (CustomerUpdated) customerEvent()    {}

// The events of a product and its stock (product-<sku>).
type ProductEvent interface{ productEvent() }

type ProductAdded struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"priceCents"`
}

type StockAdded struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

type StockReserved struct {
	SKU     string `json:"sku"`
	OrderID string `json:"orderId"`
	Qty     int64  `json:"qty"`
}

// StockReleased gives back the stock of a cancelled order's reservation (compensation).
type StockReleased struct {
	SKU     string `json:"sku"`
	OrderID string `json:"orderId"`
	Qty     int64  `json:"qty"`
}

func (ProductAdded) productEvent()  {}
func (StockAdded) productEvent()    {}
func (StockReserved) productEvent() {}
func (StockReleased) productEvent() {}

// The events of an order (order-<orderId>).
type OrderEvent interface{ orderEvent() }

// OrderLine is a line of a placed order, priced when the order was placed.
type OrderLine struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents int64  `json:"priceCents"`
}

type OrderPlaced struct {
	OrderID    string      `json:"orderId"`
	CustomerID string      `json:"customerId"`
	Lines      []OrderLine `json:"lines"`
	TotalCents int64       `json:"totalCents"`
	ItemCount  int64       `json:"itemCount"`
}

// OrderConfirmed: the stock is reserved and the payment went through.
type OrderConfirmed struct {
	OrderID    string `json:"orderId"`
	CustomerID string `json:"customerId"`
	TotalCents int64  `json:"totalCents"`
	ItemCount  int64  `json:"itemCount"`
}

// OrderCancelled: no stock, or the payment failed.
type OrderCancelled struct {
	OrderID    string `json:"orderId"`
	CustomerID string `json:"customerId"`
	Reason     string `json:"reason"`
	TotalCents int64  `json:"totalCents"`
}

func (OrderPlaced) orderEvent()    {}
func (OrderConfirmed) orderEvent() {}
func (OrderCancelled) orderEvent() {}

// The events of an order's stock reservation (reservation-<orderId>).
type ReservationEvent interface{ reservationEvent() }

// ReservedLine is a line of a reservation.
type ReservedLine struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

type ReservationSucceeded struct {
	OrderID    string         `json:"orderId"`
	Lines      []ReservedLine `json:"lines"`
	TotalCents int64          `json:"totalCents"`
}

type ReservationFailed struct {
	OrderID string `json:"orderId"`
	Reason  string `json:"reason"`
}

func (ReservationSucceeded) reservationEvent() {}
func (ReservationFailed) reservationEvent()    {}

// The events of an order's payment (payment-<orderId>).
type PaymentEvent interface{ paymentEvent() }

type PaymentSucceeded struct {
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
}

type PaymentFailed struct {
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
	Reason      string `json:"reason"`
}

func (PaymentSucceeded) paymentEvent() {}
func (PaymentFailed) paymentEvent()    {}

// PlaceOrder is the data of the PlaceOrder command (category OrderCommandCategory), as the
// gateway appends it from POST /api/orders. Its successful result is PlaceOrderResult.
type PlaceOrder struct {
	CustomerID string         `json:"customerId"`
	Lines      []ReservedLine `json:"lines"`
}

// PlaceOrderResult is the result of a successful PlaceOrder.
type PlaceOrderResult struct {
	OrderID string `json:"orderId"`
}

// NewRegistry registers every event of the shop under its type name. It skips unknown
// types, so that a service keeps running when another starts writing new kinds of events.
func NewRegistry() *sdk.Registry {
	reg := sdk.NewRegistry(sdk.RegistryOptions{SkipUnknown: true})
	sdk.MustRegister[CustomerRegistered](reg, "CustomerRegistered")
	sdk.MustRegister[CustomerUpdated](reg, "CustomerUpdated")
	sdk.MustRegister[ProductAdded](reg, "ProductAdded")
	sdk.MustRegister[StockAdded](reg, "StockAdded")
	sdk.MustRegister[StockReserved](reg, "StockReserved")
	sdk.MustRegister[StockReleased](reg, "StockReleased")
	sdk.MustRegister[OrderPlaced](reg, "OrderPlaced")
	sdk.MustRegister[OrderConfirmed](reg, "OrderConfirmed")
	sdk.MustRegister[OrderCancelled](reg, "OrderCancelled")
	sdk.MustRegister[ReservationSucceeded](reg, "ReservationSucceeded")
	sdk.MustRegister[ReservationFailed](reg, "ReservationFailed")
	sdk.MustRegister[PaymentSucceeded](reg, "PaymentSucceeded")
	sdk.MustRegister[PaymentFailed](reg, "PaymentFailed")
	return reg
}

// CheckOrderID refuses what cannot be an order id (a UUID: the id of the PlaceOrder
// command that placed it), before it reaches the store as part of a stream name.
func CheckOrderID(id string) error {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return verity.Errorf(verity.Invalid, "order", "order id %q is not a UUID", id)
	}
	return nil
}

var skuPattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// CheckSKU refuses a sku that is not 1 to 64 lower-case letters, digits and '_' (no '-':
// the sku is the id part of its stream's name).
func CheckSKU(sku string) error {
	if !skuPattern.MatchString(sku) {
		return verity.Errorf(verity.Invalid, "product", "sku %q must be 1 to 64 lower-case letters, digits or '_'", sku)
	}
	return nil
}
