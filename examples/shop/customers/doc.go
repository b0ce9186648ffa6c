// Package customers is the shop's customers service: it owns the customer-<id> streams
// (CustomerRegistered, CustomerUpdated), decided by Decider, and serves them over HTTP.
// Other services learn about customers from the log, never from this service.
package customers
