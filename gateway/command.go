package gateway

// SKELETON (issue 5): the command route's types and constructors are fixed; the bodies are
// being written. A command route turns an HTTP POST into a command appended to the log
// (sdk.SubmitCommand) and answers 202 with a status URL, or waits up to Await for the
// command's outcome (sdk.AwaitCommandOutcome).

import (
	"errors"
	"net/http"
	"time"

	"github.com/verity-dev/verity"
)

// CommandRoute is a route's `command:` block in the gateway config.
type CommandRoute struct {
	// Category is the command streams' category: each command is appended to
	// "<category>-<commandId>". Required.
	Category string `yaml:"category" json:"category"`
	// Type is the command's event type, e.g. "PlaceOrder". Required.
	Type string `yaml:"type" json:"type"`
	// Await: 0 answers 202 Accepted at once; otherwise the gateway waits up to this long
	// for the outcome and answers it (200 with the result, 4xx for a rejection), or 202
	// if it is still pending.
	Await time.Duration `yaml:"await" json:"await"`
}

// newCommandHandler serves a command route. statusBase is the path prefix of the status
// URLs ("/commands"): the answer's Location is statusBase + "/" + category + "/" + id.
func newCommandHandler(store verity.Store, routeName string, cr CommandRoute, statusBase string) (http.Handler, error) {
	return nil, errors.New("gateway: command routes not built yet")
}

// newCommandStatusHandler serves GET statusBase/{category}/{id}: the command's outcome.
func newCommandStatusHandler(store verity.Store, statusBase string) http.Handler {
	return http.NotFoundHandler()
}
