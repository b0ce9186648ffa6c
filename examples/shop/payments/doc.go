// Package payments is the shop's payments service: it owns the payment-<orderId> streams.
// On ReservationSucceeded it charges the order's total with a Provider (by default a fake
// one that declines anything over LimitCents) and records PaymentSucceeded or
// PaymentFailed.
package payments
