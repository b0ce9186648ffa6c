// Package console is Verity's web console: plain HTML, CSS and JavaScript embedded in the
// binary and served at /ui by `verity serve` and `verity dev`. It reads everything through
// the server's HTTP API with the signed-in user's credentials, so a user sees only what
// the API would show them.
package console
