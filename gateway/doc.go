// Package gateway is Verity's API gateway: it routes HTTP requests by host and path to
// services resolved through the registry, guards each upstream with a circuit breaker,
// timeouts, retries of idempotent calls and a concurrency limit that sheds load with 503,
// composes several calls into one JSON response, and turns HTTP commands into log appends.
package gateway
