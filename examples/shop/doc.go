// Package shop is Verity's reference system: a small shop of four services, customers,
// inventory, payments and orders, written only with the SDK (package sdk) and the
// platform (the service registry, the gateway, the consolidator). Each service is its own
// package with its own HTTP server, registered under its name; none calls another: they
// learn what they need from the log, and react to each other's events through consumer
// groups. Orders keeps its own view of customers and products, so it keeps taking orders
// while the customers service is down.
//
// Start runs all four in one process, as `verity dev` does; gateway.yaml is the public
// API the gateway serves in front of them. docs/shop.md describes the events and flows.
package shop
