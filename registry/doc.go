// Package registry is Verity's service registry: service instances announce themselves
// under a service name (a virtual address such as "orders"), keep a lease alive with
// heartbeats, report their health, and are found again by Lookup, Watch and a Resolver
// that balances requests among them.
//
// # The log is the registry
//
// A Registry runs over any verity.Store (the embedded engine or the network client).
// Every change — InstanceRegistered, InstanceRemoved (deregistered or expired) and
// InstanceHealthChanged — is appended to a system stream ("$registry" by default) before
// it is applied, and the in-memory state is the fold of that stream: a new Registry over
// the same store finds the same instances, and the stream is the auditable history.
// Heartbeats are not recorded (they would flood the log): leases live in memory, and only
// their end reaches the log. After a restart every instance found gets a fresh lease of
// one TTL to heartbeat again, and is removed if it does not.
//
// # Clients
//
// KeepRegistered is the loop a service runs: register, heartbeat, register again when the
// registry answers NotFound (lease lost, or a registry that lost its state), ride out
// outages, deregister on shutdown. A Resolver turns a service name into one live, healthy
// instance per request, round-robin or least-outstanding-requests, from a watch rather
// than a call per request. Both talk to small interfaces (Registrar, Source) that the
// Registry and the network Client implement alike.
//
// # Over the network
//
// NewHandler serves a Registry as HTTP/JSON with server-sent-event watches (verity serve
// mounts it at /registry); Client is its network client, whose watches reconnect by
// themselves and start again from a snapshot. A Prober, beside a Registry or over a
// Client, GETs the health check path that instances name in their metadata and sets them
// unhealthy after failures in a row, healthy again after a success.
package registry
