// Package loadgen drives the shop reference system through the gateway's public HTTP API,
// the way `verity demo load` does: it creates customers and products, then sends a mix of
// place-order, get-order, order-details and get-customer requests for a bounded time or
// number of requests, and reports per operation the count, the errors by status, the 503s
// the gateway shed, throughput and latency percentiles.
//
// It is a load tool, so it only targets the loopback interface (127.0.0.1, ::1 or
// localhost); any other host is refused before a request is sent.
//
// Usage notes:
//   - Closed loop (Rate 0, the default): each of Concurrency workers sends its next request
//     when the previous one is answered, and backs off for Retry-After (capped by
//     MaxBackoff) when the gateway sheds it with 503.
//   - Open loop (Rate > 0): requests are scheduled at Rate per second whatever the answers,
//     and latency is measured from each request's scheduled time, so a gateway that falls
//     behind shows it in the percentiles (no coordinated omission).
//   - Every order is placed with a fresh Idempotency-Key (a UUID). An order answered 503,
//     429, another 5xx that is not a command's recorded failure, or not at all (timeout,
//     connection error) is sent again with the same key and body as that worker's next
//     request (up to 5 sends), which exercises the gateway's idempotent command route. Report.Acked lists every command the gateway acknowledged (200 or 202) as
//     "category/id", so a test can check afterwards that none of them was lost.
//   - get-order and order-details pick among the orders whose id an answer revealed (a 200
//     with {"orderId"}); until there is one, they place an order instead. Reads are
//     eventually consistent: a 404 for an order placed a moment ago is counted as an error
//     by status, not hidden.
//   - Latencies go into log-linear histograms (about 1.6% relative error, fixed memory), so
//     a long run costs no more memory than a short one; only Acked grows with the run.
package loadgen
