// Package client is the Go network client of a Verity server: a verity.Store over gRPC,
// speaking Verity's own service (proto/verity/v1), so that code written against the
// embedded engine runs unchanged against `verity serve`. It passes the same conformance
// suite (package storetest) as the engine.
//
//	c, err := client.Dial("127.0.0.1:2113", client.Options{TLS: tlsConfig, Username: "admin", Password: pw})
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.Append(ctx, "order-42", verity.NoStream(), verity.EventData{Type: "OrderPlaced", Data: data})
//
// Errors are those the server's store returned, rebuilt whole: errors.Is(err,
// verity.ErrConflict) holds and the Conflict's Expected and Actual are set. A broken or
// closed connection is Unavailable.
//
// Appends travel over append sessions (session.go): long-lived calls reused from a pool,
// one message each way per append, much cheaper than a unary call each. Callers never
// share a session, so one caller's cancellation or stall touches no other's append. An
// append cut off by a broken connection is Unavailable and may or may not have been made;
// retry it with the same event ids, which the store makes idempotent.
//
// A Client is also a verity.Groups (groups.go): consumer groups managed and consumed over
// the server's verity.v1.Groups service, each consumer one bidirectional call. It passes
// the Groups conformance suite (package persistent/grouptest) as the embedded Manager does.
package client
