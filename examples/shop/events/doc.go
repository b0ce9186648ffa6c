// Package events is the shop's published language: the events every service of the shop
// writes to the log, their JSON shape and their type names, and the PlaceOrder command.
// A service owns the streams of its category and is the only writer of its events; the
// other services read them to keep their own views or to react. Sharing these types is
// sharing a schema, not a service: no service calls another.
package events
