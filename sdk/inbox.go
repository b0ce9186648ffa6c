package sdk

// Command sourcing: an HTTP command (from the gateway, or any writer) is appended as the
// first event (revision 0) of its own stream "<category>-<commandId>"; the service that
// owns the category handles it from a consumer group and records its outcome as the
// second event (revision 1) of the same stream. The stream is the command's audit trail
// and its status: one event means pending, two mean done.
//
// Exactly one outcome per command, whatever the redeliveries: the outcome is appended with
// expected revision 0 and a deterministic event id, so a second attempt either finds the
// stream at revision 1 (Conflict: already done) or is recognised as a retry of the same
// append. The handler itself runs at least once; its effects are made single by deriving
// their ids from the command id (WithCommandID).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// Outcome event types, the second event of a command stream.
const (
	CommandSucceededType = "CommandSucceeded"
	CommandRejectedType  = "CommandRejected"
	CommandFailedType    = "CommandFailed"
)

// Metadata keys a command may carry besides the correlation and causation ids.
const (
	// TraceparentKey holds the W3C trace context of the request that submitted the command.
	TraceparentKey = "traceparent"
	// TracestateKey holds the W3C tracestate that came with the traceparent, if any.
	TracestateKey = "tracestate"
	// UserIDKey holds the authenticated user who submitted the command.
	UserIDKey = "userId"
)

// CommandState is where a command stands.
type CommandState string

const (
	CommandPending   CommandState = "pending"
	CommandSucceeded CommandState = "succeeded"
	CommandRejected  CommandState = "rejected" // refused by the handler (bad input, business rule)
	CommandFailed    CommandState = "failed"   // the handler kept failing; retries exhausted
)

// Command is a command as submitted and as handled.
type Command struct {
	// ID is the command's id: the event id of revision 0 and the stream's id part.
	ID uuid.UUID
	// Category names the command stream's category, e.g. "ordercommand".
	Category string
	// Type is the command's type, e.g. "PlaceOrder".
	Type string
	// Data is the command's JSON body; empty means {}.
	Data json.RawMessage
	// Meta is the command's metadata (correlation id, traceparent, user...).
	Meta Metadata
	// Recorded is the command event as the log holds it (zero before it is appended).
	Recorded verity.RecordedEvent
}

// CommandOutcome is a command's status, as read from its stream.
type CommandOutcome struct {
	ID       uuid.UUID       `json:"commandId"`
	Category string          `json:"category"`
	Type     string          `json:"type"`
	State    CommandState    `json:"state"`
	Result   json.RawMessage `json:"result,omitempty"` // the handler's result (succeeded)
	Error    string          `json:"error,omitempty"`  // why (rejected, failed)
	Kind     string          `json:"kind,omitempty"`   // the verity error kind of a rejection, e.g. "invalid" (verity.ParseErrorKind reads it)
	Position uint64          `json:"position"`         // log position of the command event
}

// outcomeData is the data of an outcome event.
type outcomeData struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Kind   string          `json:"kind,omitempty"`
}

// CommandStream is the stream of command id in category: "<category>-<id>".
func CommandStream(category string, id uuid.UUID) string { return category + "-" + id.String() }

// outcomeEventID is the id of a command's outcome event. It is derived in a namespace of
// its own: EventID(cmd.ID, n) is what a handler's WithCommandID gives its events, and the
// log's event ids must stay unique (consumer groups ack by id).
func outcomeEventID(cmd uuid.UUID) uuid.UUID { return uuid.NewSHA1(cmd, []byte("outcome")) }

// checkCategory refuses a category that would not be the category of its streams.
func checkCategory(op, category string) error {
	switch {
	case category == "":
		return verity.Errorf(verity.Invalid, op, "command category is empty")
	case strings.Contains(category, "-"):
		return verity.Errorf(verity.Invalid, op, "command category %q contains '-': the stream's category is the part before the first '-'", category)
	case strings.HasPrefix(category, "$"):
		return verity.Errorf(verity.Invalid, op, "command category %q starts with '$', which is reserved for system streams", category)
	}
	return nil
}

// SubmitCommand appends cmd as revision 0 of its command stream (expected: no stream).
// Submitting the same command (same id, type and data) again returns the first result
// and writes nothing, so an HTTP retry with the same Idempotency-Key is safe; the
// metadata of a retry is not compared (its trace context differs). The data is compared
// after compacting whitespace, so it is read back once after every append.
// Errors: Invalid (bad category, zero id, empty type, data not JSON), Conflict (another
// command has this id), and the store's errors.
func SubmitCommand(ctx context.Context, store verity.Store, cmd Command) (verity.AppendResult, error) {
	const op = "submit command"
	if err := checkCategory(op, cmd.Category); err != nil {
		return verity.AppendResult{}, err
	}
	data, err := commandData(op, cmd)
	if err != nil {
		return verity.AppendResult{}, err
	}
	md, err := cmd.Meta.Marshal()
	if err != nil {
		return verity.AppendResult{}, err
	}
	stream := CommandStream(cmd.Category, cmd.ID)
	res, err := store.Append(ctx, stream, verity.NoStream(), verity.EventData{
		ID: cmd.ID, Type: cmd.Type, ContentType: verity.ContentTypeJSON, Data: data, Metadata: md,
	})
	if err != nil {
		return res, err
	}
	// The store recognises a retry by the event id alone; a different command under the
	// same id (the same Idempotency-Key with another body) must not pass for the first.
	evs, err := store.ReadStream(ctx, stream, verity.ReadStreamOptions{Limit: 1})
	if err != nil {
		return res, err
	}
	if len(evs) == 0 || evs[0].ID != cmd.ID || evs[0].Type != cmd.Type || !sameJSON(evs[0].Data, data) {
		return verity.AppendResult{}, &verity.Error{Kind: verity.Conflict, Op: op, Stream: stream,
			Message: fmt.Sprintf("command %s was submitted before with another type or data", cmd.ID)}
	}
	return res, nil
}

// commandData checks a command and returns its data, compacted.
func commandData(op string, cmd Command) ([]byte, error) {
	switch {
	case cmd.ID == uuid.Nil:
		return nil, verity.Errorf(verity.Invalid, op, "command id is the zero UUID")
	case cmd.Type == "":
		return nil, verity.Errorf(verity.Invalid, op, "command %s has no type", cmd.ID)
	case strings.HasPrefix(cmd.Type, "$"):
		return nil, verity.Errorf(verity.Invalid, op, "command type %q starts with '$', which is reserved", cmd.Type)
	}
	if len(bytes.TrimSpace(cmd.Data)) == 0 {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, cmd.Data); err != nil {
		return nil, verity.Errorf(verity.Invalid, op, "command %s: data is not JSON: %v", cmd.ID, err)
	}
	return buf.Bytes(), nil
}

func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// ReadCommandOutcome reads a command's status. Errors: Invalid (bad category), NotFound
// (no such command), and the store's errors.
func ReadCommandOutcome(ctx context.Context, store verity.Store, category string, id uuid.UUID) (CommandOutcome, error) {
	const op = "read command outcome"
	if err := checkCategory(op, category); err != nil {
		return CommandOutcome{}, err
	}
	evs, err := store.ReadStream(ctx, CommandStream(category, id), verity.ReadStreamOptions{Limit: 2})
	if err != nil {
		return CommandOutcome{}, err
	}
	if len(evs) == 0 || evs[0].Revision != 0 {
		// Revision 0 hidden (truncated) or never written: nothing to report on.
		return CommandOutcome{}, &verity.Error{Kind: verity.NotFound, Op: op, Stream: CommandStream(category, id),
			Message: fmt.Sprintf("no command %s", id)}
	}
	out := CommandOutcome{ID: id, Category: category, Type: evs[0].Type, State: CommandPending, Position: evs[0].Position}
	if len(evs) > 1 {
		if err := out.apply(op, evs[1]); err != nil {
			return CommandOutcome{}, err
		}
	}
	return out, nil
}

// apply reads an outcome event into o.
func (o *CommandOutcome) apply(op string, e verity.RecordedEvent) error {
	switch e.Type {
	case CommandSucceededType:
		o.State = CommandSucceeded
	case CommandRejectedType:
		o.State = CommandRejected
	case CommandFailedType:
		o.State = CommandFailed
	default:
		return &verity.Error{Kind: verity.Internal, Op: op, Stream: e.Stream,
			Message: fmt.Sprintf("revision %d has type %q, not an outcome", e.Revision, e.Type)}
	}
	var d outcomeData
	if len(e.Data) > 0 {
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return &verity.Error{Kind: verity.Internal, Op: op, Stream: e.Stream,
				Message: fmt.Sprintf("outcome at revision %d does not decode", e.Revision), Err: err}
		}
	}
	o.Result, o.Error, o.Kind = d.Result, d.Error, d.Kind
	return nil
}

// Done reports whether the command has an outcome.
func (o CommandOutcome) Done() bool { return o.State != "" && o.State != CommandPending }

// AwaitCommandOutcome waits until the command has an outcome, or ctx ends: then it returns
// the outcome read so far (state pending) and ctx's error. It follows the command stream
// with a subscription from revision 1 (no polling). Errors: as ReadCommandOutcome, the
// context's, and the subscription's.
func AwaitCommandOutcome(ctx context.Context, store verity.Store, category string, id uuid.UUID) (CommandOutcome, error) {
	const op = "await command outcome"
	out, err := ReadCommandOutcome(ctx, store, category, id)
	if err != nil || out.Done() {
		return out, err
	}
	// The subscription starts at revision 1, so an outcome recorded between the read
	// above and now is delivered as history: nothing can slip through.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := store.Subscribe(sctx, verity.SubscribeOptions{Stream: CommandStream(category, id), From: 1})
	if err != nil {
		return out, contextError(ctx, err)
	}
	defer sub.Close()
	for {
		msg, err := sub.Recv(sctx)
		if err != nil {
			return out, contextError(ctx, err)
		}
		if msg.Kind != verity.MessageEvent || msg.Event.Revision != 1 {
			continue
		}
		if err := out.apply(op, msg.Event); err != nil {
			return CommandOutcome{ID: id, Category: category, Type: out.Type, State: CommandPending, Position: out.Position}, err
		}
		return out, nil
	}
}

// contextError returns ctx's error when ctx ended or its deadline passed, else err. A
// server may give up at the deadline (and a network client report that) a moment before
// ctx's own timer fires; the caller asked for a timeout and should see one.
func contextError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

// CommandFunc handles one command. A nil error records CommandSucceeded with result
// (marshalled to JSON; nil for none). An error wrapped with Reject, or whose
// *verity.Error is of a kind that says the command itself is wrong (Invalid, NotFound,
// PermissionDenied, or a Conflict that is not a wrong expected revision), records
// CommandRejected with that kind; any other error (a wrong expected revision included) is
// retried and, on the MaxAttempts-th failure, recorded as CommandFailed. A cancelled
// context (the inbox closing) records nothing: the command is handled again later. The
// handler may see a command more than once (at-least-once): make its effects idempotent,
// e.g. with WithCommandID(cmd.ID).
type CommandFunc func(ctx context.Context, cmd Command) (result any, err error)

// rejectError marks a handler's refusal.
type rejectError struct{ err error }

func (r rejectError) Error() string { return r.err.Error() }
func (r rejectError) Unwrap() error { return r.err }

// Reject marks err as the handler's refusal of the command: recorded as CommandRejected,
// not retried. The rejection's kind is that of the *verity.Error in err's chain, or
// Invalid when there is none (or it is Internal). Reject(nil) is nil.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return rejectError{err: err}
}

// rejection says whether a handler's error refuses the command, and with which kind.
func rejection(err error) (verity.ErrorKind, bool) {
	var r rejectError
	explicit := errors.As(err, &r)
	var ve *verity.Error
	if !errors.As(err, &ve) {
		return verity.Invalid, explicit
	}
	switch ve.Kind {
	case verity.Conflict:
		// A wrong expected revision (another writer got there first, e.g. a
		// CommandHandler that gave up after its attempts) is a race, not a refusal: the
		// next attempt may succeed. A Conflict with no revision in it is the handler's
		// business refusal ("already exists").
		return ve.Kind, explicit || !revisionConflict(err)
	case verity.Invalid, verity.NotFound, verity.PermissionDenied:
		return ve.Kind, true
	case verity.Internal:
		return verity.Invalid, explicit
	}
	return ve.Kind, explicit
}

// revisionConflict reports whether err's chain holds a Conflict of a wrong expected
// revision.
func revisionConflict(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if ve, ok := err.(*verity.Error); ok && ve.Kind == verity.Conflict && ve.Expected != nil {
			return true
		}
	}
	return false
}

// CommandInboxConfig shapes a CommandInbox. Category is required; every other zero field
// means its default.
type CommandInboxConfig struct {
	// Category is the command streams' category, e.g. "ordercommand". Required.
	Category string
	// Group is the consumer group's name; default "<category>-inbox". The inbox creates
	// the group (a log group filtered on the category, from the log's start, with a
	// MaxRetryCount above MaxAttempts) when it does not exist.
	Group string
	// Consumers is how many commands are handled at once; default 1.
	Consumers int
	// MaxAttempts is how many times a failing handler is tried before CommandFailed;
	// default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff and MaxBackoff: after the n-th failure (from 1) the inbox waits
	// min(Backoff·2^(n-1), MaxBackoff) before handing the command back to the group;
	// defaults DefaultBackoff and DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c CommandInboxConfig) Validate() error {
	const op = "command inbox"
	if err := checkCategory(op, c.Category); err != nil {
		return err
	}
	switch {
	case c.Consumers < 0:
		return verity.Errorf(verity.Invalid, op, "Consumers must be ≥ 0, got %d", c.Consumers)
	case c.MaxAttempts < 0:
		return verity.Errorf(verity.Invalid, op, "MaxAttempts must be ≥ 0, got %d", c.MaxAttempts)
	case c.Backoff < 0:
		return verity.Errorf(verity.Invalid, op, "Backoff must be ≥ 0, got %v", c.Backoff)
	case c.MaxBackoff < 0:
		return verity.Errorf(verity.Invalid, op, "MaxBackoff must be ≥ 0, got %v", c.MaxBackoff)
	}
	return nil
}

func (c CommandInboxConfig) withDefaults() CommandInboxConfig {
	if c.Group == "" {
		c.Group = c.Category + "-inbox"
	}
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// CommandInbox handles the commands of one category: it consumes revision 0 of every
// "<category>-<id>" stream through a consumer group, calls the handler and records the
// outcome as revision 1. It does not use GroupRunner: commands are raw JSON of any type,
// not events of a Registry, and the inbox needs the retry count to decide when a failure
// is final.
type CommandInbox struct {
	groups verity.Groups
	store  verity.Store
	cfg    CommandInboxConfig
	h      CommandFunc
	log    *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error // the first error that stopped a consumer
}

// StartCommandInbox starts handling the commands of cfg.Category until ctx ends or Close.
// It creates the group when missing and joins cfg.Consumers consumers. Errors: Invalid
// (bad config, nil arguments), CreateGroup's and JoinGroup's errors, in which case nothing
// is left running.
func StartCommandInbox(ctx context.Context, groups verity.Groups, store verity.Store, cfg CommandInboxConfig, h CommandFunc) (*CommandInbox, error) {
	const op = "command inbox"
	switch {
	case groups == nil:
		return nil, verity.Errorf(verity.Invalid, op, "groups is nil")
	case store == nil:
		return nil, verity.Errorf(verity.Invalid, op, "store is nil")
	case h == nil:
		return nil, verity.Errorf(verity.Invalid, op, "handler is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	in := &CommandInbox{groups: groups, store: store, cfg: cfg, h: h,
		log: cfg.Logger.With("group", cfg.Group, "category", cfg.Category)}
	if err := in.ensureGroup(ctx); err != nil {
		return nil, err
	}
	consumers := make([]verity.GroupConsumer, 0, cfg.Consumers)
	for i := range cfg.Consumers {
		c, err := in.join(ctx, i)
		if err != nil {
			for _, c := range consumers {
				c.Close()
			}
			return nil, err
		}
		consumers = append(consumers, c)
	}
	ctx, in.cancel = context.WithCancel(ctx)
	for i, c := range consumers {
		in.wg.Add(1)
		go in.consume(ctx, i, c)
	}
	return in, nil
}

// ensureGroup creates the inbox's group, or checks the one that exists.
func (in *CommandInbox) ensureGroup(ctx context.Context) error {
	spec := verity.GroupSpec{
		Stream: verity.AllStream,
		Group:  in.cfg.Group,
		Filter: verity.Filter{Categories: []string{in.cfg.Category}},
		Settings: verity.GroupSettings{
			// The inbox records CommandFailed on the MaxAttempts-th delivery; the group
			// must not park the command before that, or the caller never sees an outcome.
			// Message timeouts count as retries too, hence the margin.
			MaxRetryCount: max(verity.DefaultMaxRetryCount, 2*in.cfg.MaxAttempts),
		},
	}
	err := in.groups.CreateGroup(ctx, spec)
	if err == nil || !errors.Is(err, verity.ErrConflict) {
		return err
	}
	info, err := in.groups.GetGroup(ctx, verity.AllStream, in.cfg.Group)
	if err != nil {
		return err
	}
	if f := info.Filter; len(f.Categories) != 1 || f.Categories[0] != in.cfg.Category {
		in.log.Warn("sdk: the command inbox's group exists with another filter", "filter", fmt.Sprintf("%+v", f))
	}
	if info.Settings.MaxRetryCount < in.cfg.MaxAttempts-1 {
		in.log.Warn("sdk: the command inbox's group parks commands before MaxAttempts; they would stay pending",
			"maxRetryCount", info.Settings.MaxRetryCount, "maxAttempts", in.cfg.MaxAttempts)
	}
	return nil
}

func (in *CommandInbox) join(ctx context.Context, i int) (verity.GroupConsumer, error) {
	// One command in flight per consumer: handlers are slow next to a delivery, and a
	// command buffered behind a slow one would only time out and be handed out again.
	return in.groups.JoinGroup(ctx, verity.AllStream, in.cfg.Group,
		verity.JoinOptions{MaxInFlight: 1, Name: fmt.Sprintf("%s/%d", in.cfg.Group, i)})
}

// Close stops handling and waits for the handlers in progress. A handler that returns
// after the inbox began closing still has its outcome recorded if it succeeded or
// rejected; a failure is left for a later delivery. It returns the error that stopped a
// consumer early, if any, and is idempotent.
func (in *CommandInbox) Close() error {
	in.cancel()
	in.wg.Wait()
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

func (in *CommandInbox) fail(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err == nil {
		in.err = err
	}
}

// consume runs one consumer until ctx ends or the group goes away, joining again when the
// server disconnects it.
func (in *CommandInbox) consume(ctx context.Context, i int, c verity.GroupConsumer) {
	defer in.wg.Done()
	log := in.log.With("consumer", i)
	for {
		err := in.serve(ctx, c, log)
		c.Close()
		c = nil
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, verity.ErrUnavailable) {
			in.fail(err)
			log.Error("sdk: command inbox consumer stopped", "err", err)
			return
		}
		for c == nil {
			if sleep(ctx, DefaultRejoinDelay) != nil {
				return
			}
			c, err = in.join(ctx, i)
			if err != nil && ctx.Err() == nil && !errors.Is(err, verity.ErrUnavailable) {
				in.fail(err)
				log.Error("sdk: command inbox consumer could not rejoin", "err", err)
				return
			}
			if err != nil {
				c = nil
			}
		}
	}
}

// serve handles commands from one connection of a consumer until an error.
func (in *CommandInbox) serve(ctx context.Context, c verity.GroupConsumer, log *slog.Logger) error {
	for {
		msg, err := c.Recv(ctx)
		if err != nil {
			return err
		}
		done, err := in.handle(ctx, msg, log)
		if err != nil {
			return err
		}
		// Acked even if the inbox began closing meanwhile, or the group would hand the
		// command out again; the bound keeps Close from waiting on a dead connection.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closingAckTimeout)
		if done {
			err = c.Ack(actx, msg.Event.ID)
		} else {
			err = c.Nack(actx, verity.NackRetry, "command handler failed", msg.Event.ID)
		}
		cancel()
		if err != nil {
			return err
		}
	}
}

// handle handles one delivery. It returns done (ack it) or not (nack for a retry), or an
// error that stops the consumer (the inbox is closing).
func (in *CommandInbox) handle(ctx context.Context, msg verity.GroupMessage, log *slog.Logger) (bool, error) {
	rec := msg.Event
	cmd, ok := in.decode(rec, log)
	if !ok {
		return true, nil // an outcome, or not a command at all: nothing to do
	}
	// A redelivered command may be done already (the ack was lost, or another consumer
	// got it after a timeout). One backwards read of the last event tells, and spares a
	// second run of the handler in the common case; the expected revision of the outcome
	// append below still settles a race between two handlers.
	last, err := in.store.ReadStream(ctx, rec.Stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, verity.ErrNotFound), errors.Is(err, verity.ErrDeleted):
		log.Warn("sdk: dropping a command whose stream is gone", "stream", rec.Stream)
		return true, nil
	case err != nil:
		log.Warn("sdk: could not read a command stream; retrying", "stream", rec.Stream, "err", err)
		return false, nil
	case len(last) > 0 && last[0].Revision >= 1:
		return true, nil
	}

	result, herr := in.h(ctx, cmd)
	if herr != nil && ctx.Err() != nil {
		return false, ctx.Err() // closing: leave the command to a later delivery
	}
	var typ string
	var data outcomeData
	attempt := msg.RetryCount + 1
	switch kind, rejected := rejection(herr); {
	case herr == nil:
		typ = CommandSucceededType
		if result != nil {
			b, err := json.Marshal(result)
			if err != nil {
				// Retrying cannot fix a result that does not marshal.
				typ, data.Error = CommandFailedType, fmt.Sprintf("the handler's result does not marshal to JSON: %v", err)
				break
			}
			data.Result = b
		}
	case rejected:
		typ, data.Error, data.Kind = CommandRejectedType, herr.Error(), kind.String()
	case attempt < in.cfg.MaxAttempts:
		log.Warn("sdk: command handler failed; retrying", "command", cmd.ID, "type", cmd.Type, "attempt", attempt, "err", herr)
		d := min(in.cfg.Backoff<<min(attempt-1, 30), in.cfg.MaxBackoff)
		if err := sleep(ctx, d); err != nil {
			return false, err
		}
		return false, nil
	default:
		log.Error("sdk: command failed for good", "command", cmd.ID, "type", cmd.Type, "attempts", attempt, "err", herr)
		typ, data.Error = CommandFailedType, herr.Error()
	}
	return in.record(ctx, cmd, typ, data, log)
}

// decode turns revision 0 of a command stream into a Command.
func (in *CommandInbox) decode(rec verity.RecordedEvent, log *slog.Logger) (Command, bool) {
	if rec.Revision != 0 {
		return Command{}, false
	}
	id, err := uuid.Parse(strings.TrimPrefix(rec.Stream, in.cfg.Category+"-"))
	if err != nil || id != rec.ID {
		log.Warn("sdk: skipping an event that is not a command: a command stream is <category>-<event id>",
			"stream", rec.Stream, "event", rec.ID)
		return Command{}, false
	}
	md, err := ParseMetadata(rec.Metadata)
	if err != nil {
		log.Warn("sdk: command metadata is not a JSON object; ignoring it", "command", id, "err", err)
	}
	return Command{ID: id, Category: in.cfg.Category, Type: rec.Type, Data: json.RawMessage(rec.Data), Meta: md, Recorded: rec}, true
}

// record appends a command's outcome as revision 1 of its stream.
func (in *CommandInbox) record(ctx context.Context, cmd Command, typ string, data outcomeData, log *slog.Logger) (bool, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return false, verity.Errorf(verity.Internal, "command inbox", "outcome of command %s: %v", cmd.ID, err)
	}
	md := Metadata{CorrelationID: cmd.Meta.CorrelationID, CausationID: cmd.ID.String()}
	if md.CorrelationID == "" {
		md.CorrelationID = cmd.ID.String()
	}
	if tp, ok := cmd.Meta.Extra[TraceparentKey]; ok {
		md.Extra = map[string]json.RawMessage{TraceparentKey: tp}
	}
	mb, err := md.Marshal()
	if err != nil {
		mb = nil
	}
	// The handler's work is done: record it even if the inbox began closing meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closingAckTimeout)
	defer cancel()
	_, err = in.store.Append(actx, cmd.Recorded.Stream, verity.Exact(0), verity.EventData{
		ID: outcomeEventID(cmd.ID), Type: typ, ContentType: verity.ContentTypeJSON, Data: b, Metadata: mb,
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, verity.ErrConflict), errors.Is(err, verity.ErrDeleted):
		return true, nil // another delivery recorded the outcome first
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	log.Warn("sdk: could not record a command's outcome; retrying", "command", cmd.ID, "err", err)
	return false, nil
}
