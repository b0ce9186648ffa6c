// Package auth authenticates callers and enforces who may do what to which stream.
//
// Users, their bcrypt-hashed passwords, roles and bearer tokens are kept as events in a
// system stream ($users), so the user list is a view of the log. Access is decided per stream and
// per category from configured rules and from a stream's $acl metadata; system ("$")
// streams are for admins only. Service wraps a verity.Store for one Principal so that every
// protocol front end enforces the same rules the same way: a front end calls
// Service.Authenticate with the request's Authorization header, then uses Service.Store of
// the Principal it got for everything the request does. Service.Handler serves the user and
// token management API (docs/security.md).
package auth
