// Package httpapi is Verity's HTTP/JSON front end: append to one stream or atomically to
// several, read a stream or the whole log ($all) with filters and paging, follow them live as
// server-sent events, manage stream metadata, deletes and tombstones, and manage consumer
// groups (persistent subscriptions, groups.go; consuming them is gRPC's).
//
// It speaks plain JSON over the routes documented in docs/http-api.md and knows nothing of
// users or rules itself: every request's Authorization header goes to an Access, and the
// verity.Store and verity.Groups that Access hands back for the caller enforce what the
// caller may do. The server mounts the handler New returns on the same port as gRPC.
package httpapi
