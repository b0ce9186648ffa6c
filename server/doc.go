// Package server is `verity serve`: the embedded engine behind the network.
//
// One port carries the KurrentDB gRPC protocol (protocol/kurrentdb), Verity's own gRPC
// service (protocol/grpcapi, used by the Go client), the HTTP/JSON API (protocol/httpapi),
// user management (auth), /health/live, /health/ready and Prometheus /metrics. Every
// front end authenticates the caller and works on the store through package auth, so access
// rules hold the same way whichever protocol is used. Persistent subscriptions (package
// persistent) run over the engine itself and reach callers through auth.GuardGroups. Config comes from a YAML file, VERITY_*
// environment variables and flags, in that order of precedence (lowest first).
package server
