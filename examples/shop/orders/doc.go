// Package orders is the shop's orders service: it owns the order-<orderId> streams. It
// handles the PlaceOrder commands that the gateway appends to ordercommand-<commandId>
// (command sourcing, sdk.StartCommandInbox), checking them against its own in-memory
// view of customers and products, and closes each order when inventory and payments have
// spoken (Outcomes): confirmed once paid, cancelled when out of stock or declined.
package orders
