// Package inventory is the shop's inventory service: it owns the product-<sku> streams
// (products and their stock, decided by Decider) and the reservation-<orderId> streams.
// Its process manager (Process) reserves the stock of a placed order, all lines at once
// or none, and releases it when the order is cancelled (compensation).
package inventory
