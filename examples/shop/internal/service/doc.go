// Package service is the lifecycle the four shop services share: an HTTP server, the
// runners that follow the log, and the instance's registration in the service registry,
// started in that order and stopped in the reverse one, gracefully (Close) or abruptly,
// as a crash would (Kill).
package service
