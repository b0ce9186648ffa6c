package gateway

// A command route turns an HTTP POST into a command appended to the log (sdk.SubmitCommand)
// and answers 202 with a status URL, or waits up to Await for the command's outcome
// (sdk.AwaitCommandOutcome). The service that owns the category handles the command from
// its log (sdk.StartCommandInbox); the gateway never calls it. docs/commands.md has the
// protocol and every answer.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
	"github.com/verity-dev/verity/sdk"
)

// CommandRoute is a route's `command:` block in the gateway config.
type CommandRoute struct {
	// Category is the command streams' category: each command is appended to
	// "<category>-<commandId>". Required; no '-', no leading '$'.
	Category string `yaml:"category" json:"category"`
	// Type is the command's event type, e.g. "PlaceOrder". Required.
	Type string `yaml:"type" json:"type"`
	// Await: 0 answers 202 Accepted at once; otherwise the gateway waits up to this long
	// for the outcome and answers it (200 with the result, 4xx for a rejection, 500 for a
	// failure), or 202 if it is still pending. At most MaxCommandWait.
	Await time.Duration `yaml:"await" json:"await"`
}

// Limits of the command routes.
const (
	// MaxCommandBody is the largest command body accepted (bytes); larger is 413.
	MaxCommandBody = 1 << 20
	// MaxCommandWait bounds a route's Await and a status request's ?wait=.
	MaxCommandWait = 30 * time.Second
	// maxIdempotencyKey bounds the Idempotency-Key header (characters).
	maxIdempotencyKey = 255
)

// Request headers a command route reads.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerCorrelationID  = "X-Correlation-Id"
	// headerCommandID is set on every answer of a command route.
	headerCommandID = "X-Command-Id"
)

// commandIDSpace is the UUIDv5 namespace of the ids derived from an Idempotency-Key, so
// that the same key on the same route always names the same command.
var commandIDSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://verity.dev/gateway/commands"))

// commandIDOf is the id of a command sent to route with an Idempotency-Key.
func commandIDOf(route, key string) uuid.UUID {
	return uuid.NewSHA1(commandIDSpace, []byte(route+"\x00"+key))
}

// commandUserKey is the context key of the authenticated user of a request.
type commandUserKey struct{}

// withCommandUser returns ctx carrying the request's authenticated user, which command
// routes record in the command's metadata under sdk.UserIDKey. The gateway has no
// authentication of its own yet, so nothing outside the tests sets it: commands carry no
// userId until it does.
func withCommandUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, commandUserKey{}, user)
}

func commandUserOf(ctx context.Context) string {
	u, _ := ctx.Value(commandUserKey{}).(string)
	return u
}

// commandAnswer is the JSON of every command route answer and status answer: the outcome
// (state pending until the service records one) and where to ask for it again.
type commandAnswer struct {
	sdk.CommandOutcome
	StatusURL string `json:"statusUrl"`
}

// checkCommandCategory refuses a category its command streams would not be in.
func checkCommandCategory(category string) error {
	switch {
	case category == "":
		return errors.New("category is required")
	case strings.Contains(category, "-"), strings.HasPrefix(category, "$"), strings.ContainsAny(category, "/?# "):
		return fmt.Errorf("category %q must have no '-', '/', '?', '#' or space and not start with '$'", category)
	}
	return nil
}

// commandHandler serves one command route.
type commandHandler struct {
	store      verity.Store
	route      string
	cr         CommandRoute
	statusBase string
}

// newCommandHandler serves a command route. statusBase is the path prefix of the status
// URLs (e.g. "/api/commands"): the answer's Location is statusBase + "/" + category + "/"
// + id. Errors (Invalid): a nil store, an empty route name, a bad category or type, an
// Await out of [0, MaxCommandWait].
func newCommandHandler(store verity.Store, routeName string, cr CommandRoute, statusBase string) (http.Handler, error) {
	const op = "command route"
	if store == nil {
		return nil, verity.Errorf(verity.Invalid, op, "store is nil")
	}
	if routeName == "" {
		return nil, verity.Errorf(verity.Invalid, op, "route name is empty")
	}
	if err := checkCommandCategory(cr.Category); err != nil {
		return nil, verity.Errorf(verity.Invalid, op, "route %q: %v", routeName, err)
	}
	switch {
	case cr.Type == "" || strings.HasPrefix(cr.Type, "$"):
		return nil, verity.Errorf(verity.Invalid, op, "route %q: type %q must be set and not start with '$'", routeName, cr.Type)
	case cr.Await < 0 || cr.Await > MaxCommandWait:
		return nil, verity.Errorf(verity.Invalid, op, "route %q: await %v must be between 0 and %v", routeName, cr.Await, MaxCommandWait)
	}
	return &commandHandler{store: store, route: routeName, cr: cr, statusBase: strings.TrimSuffix(statusBase, "/")}, nil
}

func (h *commandHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := commandBody(w, r)
	if err != nil {
		cmdWriteError(w, r, err)
		return
	}
	id := uuid.New()
	if key := r.Header.Get(headerIdempotencyKey); key != "" {
		if len(key) > maxIdempotencyKey {
			cmdWriteError(w, r, verity.Errorf(verity.Invalid, "command", "%s header is over %d characters", headerIdempotencyKey, maxIdempotencyKey))
			return
		}
		id = commandIDOf(h.route, key)
	}
	md := sdk.Metadata{CorrelationID: r.Header.Get(headerCorrelationID)}
	if md.CorrelationID == "" {
		md.CorrelationID = id.String()
	}
	if tp := r.Header.Get("traceparent"); tp != "" {
		md, _ = md.With(sdk.TraceparentKey, tp) // a string always marshals
	}
	if u := commandUserOf(r.Context()); u != "" {
		md, _ = md.With(sdk.UserIDKey, u)
	}
	cmd := sdk.Command{ID: id, Category: h.cr.Category, Type: h.cr.Type, Data: data, Meta: md}
	w.Header().Set(headerCommandID, id.String())
	w.Header().Set(headerCorrelationID, md.CorrelationID)
	res, err := sdk.SubmitCommand(r.Context(), h.store, cmd)
	if err != nil {
		cmdWriteError(w, r, err)
		return
	}
	ans := commandAnswer{
		CommandOutcome: sdk.CommandOutcome{ID: id, Category: h.cr.Category, Type: h.cr.Type, State: sdk.CommandPending, Position: res.Position},
		StatusURL:      h.statusBase + "/" + h.cr.Category + "/" + id.String(),
	}
	if h.cr.Await > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), h.cr.Await)
		out, err := sdk.AwaitCommandOutcome(ctx, h.store, h.cr.Category, id)
		cancel()
		switch {
		case err == nil:
			ans.CommandOutcome = out
		case r.Context().Err() != nil:
			return // the caller is gone: nobody to answer
		case ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded):
			// The command is in the log: say so, with the way to follow it, rather than
			// turning a failed wait into an error the client would retry as a new command.
			slog.Default().WarnContext(r.Context(), "gateway: waiting for a command's outcome failed", "route", h.route, "command", id, "err", err)
		}
	}
	cmdWriteOutcome(w, ans)
}

// commandBody reads a command route's body: a JSON object of at most MaxCommandBody
// bytes (empty means {}), with the route pattern's wildcards added unless the body has
// them. It is re-encoded, so two bodies that differ only in spacing or key order make the
// same command (and the same Idempotency-Key retry).
func commandBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	const op = "command"
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCommandBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, verity.Errorf(verity.Invalid, op, "reading the body: %v", err)
	}
	obj := map[string]json.RawMessage{}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		if err := dec.Decode(&obj); err != nil || obj == nil {
			return nil, verity.Errorf(verity.Invalid, op, "the body must be a JSON object: %v", cmdJSONErr(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, verity.Errorf(verity.Invalid, op, "the body must be one JSON object, with nothing after it")
		}
	}
	for _, name := range patternWildcards(r.Pattern) {
		if _, ok := obj[name]; ok {
			continue
		}
		if v := r.PathValue(name); v != "" {
			b, _ := json.Marshal(v)
			obj[name] = b
		}
	}
	return json.Marshal(obj)
}

func cmdJSONErr(err error) error {
	if err == nil {
		return errors.New("got null")
	}
	return err
}

// patternWildcards lists the names of a ServeMux pattern's wildcards: "{id}" and
// "{rest...}"; "{$}" is not one.
func patternWildcards(pattern string) []string {
	var names []string
	for {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return names
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return names
		}
		name := strings.TrimSuffix(pattern[i+1:i+j], "...")
		if name != "" && name != "$" {
			names = append(names, name)
		}
		pattern = pattern[i+j+1:]
	}
}

// commandStatusHandler serves the outcomes of commands.
type commandStatusHandler struct {
	store      verity.Store
	statusBase string
}

// newCommandStatusHandler serves GET statusBase/{category}/{id}: the command's outcome as
// JSON (200, state pending until the service records one), 404 for an unknown command,
// 400 for a bad category or id. ?wait=2s (Go duration, at most MaxCommandWait) waits that
// long for a pending command's outcome. It parses the path itself, so it may be mounted on
// the prefix statusBase + "/".
func newCommandStatusHandler(store verity.Store, statusBase string) http.Handler {
	return &commandStatusHandler{store: store, statusBase: strings.TrimSuffix(statusBase, "/")}
}

func (h *commandStatusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const op = "command status"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpjson.Write(w, http.StatusMethodNotAllowed, cmdErrorBody(verity.Invalid, fmt.Sprintf("method %s not allowed: use GET", r.Method)))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, h.statusBase+"/")
	category, idText, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || category == "" || strings.Contains(idText, "/") {
		cmdWriteError(w, r, verity.Errorf(verity.NotFound, op, "no such path %q: use %s/{category}/{id}", r.URL.Path, h.statusBase))
		return
	}
	if err := checkCommandCategory(category); err != nil {
		cmdWriteError(w, r, verity.Errorf(verity.Invalid, op, "%v", err))
		return
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		cmdWriteError(w, r, verity.Errorf(verity.Invalid, op, "command id %q is not a UUID", idText))
		return
	}
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			cmdWriteError(w, r, verity.Errorf(verity.Invalid, op, "wait %q is not a duration such as 2s", s))
			return
		}
		wait = min(wait, MaxCommandWait)
	}
	var out sdk.CommandOutcome
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		out, err = sdk.AwaitCommandOutcome(ctx, h.store, category, id)
		cancel()
		if err != nil && out.State == sdk.CommandPending && r.Context().Err() == nil {
			err = nil // waited in vain (or the wait broke off): the command is still pending
		}
	} else {
		out, err = sdk.ReadCommandOutcome(r.Context(), h.store, category, id)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		cmdWriteError(w, r, err)
		return
	}
	w.Header().Set(headerCommandID, id.String())
	httpjson.Write(w, http.StatusOK, commandAnswer{CommandOutcome: out, StatusURL: h.statusBase + "/" + category + "/" + id.String()})
}

// cmdWriteOutcome answers a command route with where the command stands.
func cmdWriteOutcome(w http.ResponseWriter, ans commandAnswer) {
	status := http.StatusOK
	switch ans.State {
	case sdk.CommandPending:
		status = http.StatusAccepted
		w.Header().Set("Location", ans.StatusURL)
	case sdk.CommandRejected:
		status = verity.ParseErrorKind(ans.Kind).HTTPStatus()
		if status >= 500 {
			status = http.StatusUnprocessableEntity // a refusal is the caller's business, never a 5xx
		}
	case sdk.CommandFailed:
		status = http.StatusInternalServerError
	}
	httpjson.Write(w, status, ans)
}

// cmdErrorBody is the JSON of an error answer, as every Verity HTTP API writes it:
// {"error": {"kind": "invalid", "message": "..."}}.
func cmdErrorBody(kind verity.ErrorKind, msg string) any {
	return map[string]any{"error": map[string]string{"kind": kind.String(), "message": msg}}
}

// cmdWriteError answers with err: its kind's status, 413 for a body over the limit, 503
// with Retry-After when the store is unavailable. Internal errors go to the log, not to the
// caller.
func cmdWriteError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		httpjson.Write(w, http.StatusRequestEntityTooLarge, cmdErrorBody(verity.Invalid,
			"the body is over the limit of "+strconv.FormatInt(tooBig.Limit, 10)+" bytes"))
		return
	}
	kind := verity.KindOf(err)
	msg := err.Error()
	switch kind {
	case verity.Internal:
		slog.Default().ErrorContext(r.Context(), "gateway: command route: internal error", "path", r.URL.Path, "err", err)
		msg = "internal error; the gateway log has the details"
	case verity.Unavailable, verity.ResourceExhausted:
		w.Header().Set("Retry-After", "1")
	}
	httpjson.Write(w, kind.HTTPStatus(), cmdErrorBody(kind, msg))
}
