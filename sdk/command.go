package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Defaults of CommandHandlerConfig.
const (
	DefaultMaxAttempts     = 5
	DefaultBackoff         = 5 * time.Millisecond
	DefaultMaxBackoff      = 250 * time.Millisecond
	DefaultSnapshotVersion = "1"
	DefaultSnapshotKeep    = 1
)

// SnapshotEventType is the type of the events of a snapshot stream.
const SnapshotEventType = "$snapshot"

// SnapshotStreamOf is the default name of the stream that holds a stream's snapshots.
func SnapshotStreamOf(stream string) string { return "$snapshot-" + stream }

// CommandHandlerConfig shapes a CommandHandler. The zero value is the default: no
// snapshots, DefaultMaxAttempts attempts.
type CommandHandlerConfig struct {
	// MaxAttempts is how many times a command is decided and appended while appends fail
	// with Conflict (another writer got there first); default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff and MaxBackoff: after the n-th conflict (from 1) the handler waits a random
	// time in [0, min(Backoff·2^(n-1), MaxBackoff)) before reloading; defaults
	// DefaultBackoff and DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration

	// SnapshotEvery turns snapshots on: once at least this many events were folded since
	// the last snapshot, the state is written to the snapshot stream after a command, and
	// loading starts from the latest snapshot. Zero: no snapshots.
	SnapshotEvery int
	// SnapshotVersion names the shape of the state S; snapshots of another version are
	// ignored (and replaced). Change it whenever S changes incompatibly, or Evolve changes
	// meaning. Default DefaultSnapshotVersion.
	SnapshotVersion string
	// SnapshotStream names a stream's snapshot stream; default SnapshotStreamOf
	// ("$snapshot-" + stream). A server with access control lets only admins write "$"
	// streams: give a service without that right a name of its own, e.g. "snapshot-"+s.
	SnapshotStream func(stream string) string
	// SnapshotKeep is the $maxCount set on a snapshot stream when its first snapshot is
	// written, so old snapshots can be scavenged; default DefaultSnapshotKeep.
	SnapshotKeep int

	// ReadBatch is how many events one stream read returns; default
	// verity.DefaultReadLimit.
	ReadBatch int
	// Logger receives failures to write a snapshot (the command itself succeeded); default
	// slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c CommandHandlerConfig) Validate() error {
	switch {
	case c.MaxAttempts < 0:
		return verity.Errorf(verity.Invalid, "command handler", "MaxAttempts must be ≥ 0, got %d", c.MaxAttempts)
	case c.Backoff < 0:
		return verity.Errorf(verity.Invalid, "command handler", "Backoff must be ≥ 0, got %v", c.Backoff)
	case c.MaxBackoff < 0:
		return verity.Errorf(verity.Invalid, "command handler", "MaxBackoff must be ≥ 0, got %v", c.MaxBackoff)
	case c.SnapshotEvery < 0:
		return verity.Errorf(verity.Invalid, "command handler", "SnapshotEvery must be ≥ 0, got %d", c.SnapshotEvery)
	case c.SnapshotKeep < 0:
		return verity.Errorf(verity.Invalid, "command handler", "SnapshotKeep must be ≥ 0, got %d", c.SnapshotKeep)
	case c.ReadBatch < 0:
		return verity.Errorf(verity.Invalid, "command handler", "ReadBatch must be ≥ 0, got %d", c.ReadBatch)
	}
	return nil
}

func (c CommandHandlerConfig) withDefaults() CommandHandlerConfig {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.SnapshotVersion == "" {
		c.SnapshotVersion = DefaultSnapshotVersion
	}
	if c.SnapshotStream == nil {
		c.SnapshotStream = SnapshotStreamOf
	}
	if c.SnapshotKeep == 0 {
		c.SnapshotKeep = DefaultSnapshotKeep
	}
	if c.ReadBatch == 0 {
		c.ReadBatch = verity.DefaultReadLimit
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// CommandHandler runs a Decider against streams of a Store: load the stream (from a
// snapshot when there is one), decide, append with the exact expected revision, and on a
// Conflict reload and decide again. It is safe for concurrent use; concurrent commands on
// one stream are serialised by the store's optimistic concurrency, not by a lock.
type CommandHandler[S, C, E any] struct {
	store   verity.Store
	reg     *Registry
	decider Decider[S, C, E]
	cfg     CommandHandlerConfig
}

// NewCommandHandler returns a handler of decider's commands over store, with events
// encoded and decoded by reg. Errors (Invalid): a nil store or registry, a Decider with a
// missing function, a bad config.
func NewCommandHandler[S, C, E any](store verity.Store, reg *Registry, decider Decider[S, C, E], cfg CommandHandlerConfig) (*CommandHandler[S, C, E], error) {
	if store == nil {
		return nil, verity.Errorf(verity.Invalid, "command handler", "store is nil")
	}
	if reg == nil {
		return nil, verity.Errorf(verity.Invalid, "command handler", "registry is nil")
	}
	if err := decider.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &CommandHandler[S, C, E]{store: store, reg: reg, decider: decider, cfg: cfg.withDefaults()}, nil
}

// CommandOption shapes one Handle call.
type CommandOption func(*commandOptions)

type commandOptions struct {
	id uuid.UUID
	md Metadata
}

// WithCommandID makes the command idempotent: its events get ids derived from id (see
// EventID), and a command whose events are already in the stream is not decided again —
// Handle returns the original result with Duplicate set. Without it the events get
// random ids and a retried command is a new command.
func WithCommandID(id uuid.UUID) CommandOption {
	return func(o *commandOptions) { o.id = id }
}

// WithMetadata sets the metadata written on every event of the command (correlation id,
// causation id, who). Options apply in order: given after ReactingTo it replaces the
// correlation and causation ids ReactingTo set; given before, ReactingTo keeps its Extra
// fields.
func WithMetadata(md Metadata) CommandOption {
	return func(o *commandOptions) { o.md = md }
}

// ReactingTo is the option of a command that a process manager issues in reaction to e:
// its command id is CommandID(e's id, key), so a redelivered e does not double the
// command's effect, and its events carry e's correlation id (or e's id when it has none)
// and e's id as causation id. key tells apart the commands issued for one event.
func ReactingTo(e Event, key string) CommandOption {
	return func(o *commandOptions) {
		o.id = CommandID(e.Recorded.ID, key)
		extra := o.md.Extra
		o.md = CausedBy(e.Recorded)
		// Extra fields set by earlier options win over those carried from the cause.
		for k, v := range extra {
			if o.md.Extra == nil {
				o.md.Extra = map[string]json.RawMessage{}
			}
			o.md.Extra[k] = v
		}
	}
}

// Result is what a handled command did.
type Result[S, E any] struct {
	// State is the entity's state after the command's events.
	State S
	// Events are the events the command appended (none when it decided none); for a
	// Duplicate, the events the command appended the first time.
	Events []E
	// Stream is the stream's state after the command: its last revision, or no stream.
	// For a Duplicate, the revision of the command's last event.
	Stream verity.StreamState
	// Position is the log position of the command's last event; 0 when it appended none.
	Position uint64
	// Duplicate says the command id had been handled before: nothing was appended. (A
	// retry racing its original may also see Duplicate false; both calls then return the
	// same result, and the events are in the stream once.)
	Duplicate bool
	// Attempts is how many times the command was decided (1 unless appends conflicted).
	Attempts int
}

// Handle runs one command against stream. It returns Decide's error as-is (a domain
// error, never retried), a Conflict once MaxAttempts appends conflicted, the context's
// error when ctx ends (also during a backoff), Invalid for a bad stream name or an event
// type the registry does not know, or the store's error.
//
// With WithCommandID, a command whose events are already in the stream returns the
// original result. The check happens while folding the stream, so with snapshots it only
// sees the events after the latest snapshot: a command retried after a snapshot covered
// its events is decided again (with the same event ids, but as a new append).
func (h *CommandHandler[S, C, E]) Handle(ctx context.Context, stream string, cmd C, opts ...CommandOption) (Result[S, E], error) {
	const op = "handle"
	if stream == "" {
		return Result[S, E]{}, verity.Errorf(verity.Invalid, op, "stream name is empty")
	}
	if verity.IsSystemStream(stream) {
		return Result[S, E]{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "commands cannot target a system stream (\"$\" prefix)"}
	}
	var o commandOptions
	for _, opt := range opts {
		opt(&o)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return Result[S, E]{}, err
		}
		res, conflict, err := h.attempt(ctx, stream, cmd, o)
		res.Attempts = attempt
		if !conflict {
			return res, err
		}
		if attempt >= h.cfg.MaxAttempts {
			return res, &verity.Error{Kind: verity.Conflict, Op: op, Stream: stream, Message: fmt.Sprintf("gave up after %d conflicting attempts", attempt), Err: err}
		}
		if err := sleep(ctx, h.backoff(attempt)); err != nil {
			return Result[S, E]{}, err
		}
	}
}

func (h *CommandHandler[S, C, E]) backoff(attempt int) time.Duration {
	d := h.cfg.Backoff << min(attempt-1, 20)
	if d <= 0 || d > h.cfg.MaxBackoff {
		d = h.cfg.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// attempt loads, decides and appends once. conflict reports that the append failed with a
// Conflict (and only then: a Decide error of kind Conflict is the domain's, not retried).
func (h *CommandHandler[S, C, E]) attempt(ctx context.Context, stream string, cmd C, o commandOptions) (_ Result[S, E], conflict bool, _ error) {
	l, err := h.load(ctx, stream, o.id)
	if err != nil {
		return Result[S, E]{}, false, err
	}
	if l.dup != nil {
		return l.dup.result(), false, nil
	}
	current := verity.StreamState{Exists: l.exists, Revision: l.rev}
	events, err := h.decider.Decide(l.state, cmd)
	if err != nil {
		return Result[S, E]{}, false, err
	}
	if len(events) == 0 {
		return Result[S, E]{State: l.state, Stream: current}, false, nil
	}
	data := make([]verity.EventData, len(events))
	for i, e := range events {
		ed, err := h.reg.Encode(e, o.md)
		if err != nil {
			return Result[S, E]{}, false, err
		}
		if o.id != uuid.Nil {
			ed.ID = EventID(o.id, i)
		} else {
			ed.ID = uuid.New()
		}
		data[i] = ed
	}
	expected := verity.NoStream()
	if l.exists {
		expected = verity.Exact(l.rev)
	}
	ar, err := h.store.Append(ctx, stream, expected, data...)
	if err != nil {
		return Result[S, E]{}, errors.Is(err, verity.ErrConflict), err
	}
	fresh := ar.Revision == revAfter(l, len(events))
	if !fresh && o.id != uuid.Nil {
		// The store answered the append as a retry of an earlier one with the same event
		// ids: the same command committed concurrently. Report that original.
		again, err := h.load(ctx, stream, o.id)
		if err != nil {
			return Result[S, E]{}, false, err
		}
		if again.dup != nil {
			return again.dup.result(), false, nil
		}
	}
	state := h.decider.Fold(l.state, events...)
	if fresh && h.cfg.SnapshotEvery > 0 && l.sinceSnapshot+len(events) >= h.cfg.SnapshotEvery {
		h.writeSnapshot(ctx, stream, state, ar.Revision, l.snapshotExists)
	}
	return Result[S, E]{State: state, Events: events, Stream: verity.StreamState{Exists: true, Revision: ar.Revision}, Position: ar.Position}, false, nil
}

// revAfter is the revision the stream reaches when n events are appended to what l saw. An
// append answered as an idempotent retry lands elsewhere: its state is not snapshotted.
func revAfter[S, E any](l *loaded[S, E], n int) uint64 {
	if !l.exists {
		return uint64(n - 1)
	}
	return l.rev + uint64(n)
}

// State loads a stream's current state, from a snapshot when there is one, without
// deciding anything.
func (h *CommandHandler[S, C, E]) State(ctx context.Context, stream string) (S, verity.StreamState, error) {
	if stream == "" {
		var zero S
		return zero, verity.StreamState{}, verity.Errorf(verity.Invalid, "state", "stream name is empty")
	}
	l, err := h.load(ctx, stream, uuid.Nil)
	if err != nil {
		var zero S
		return zero, verity.StreamState{}, err
	}
	return l.state, verity.StreamState{Exists: l.exists, Revision: l.rev}, nil
}

// loaded is a stream folded into a state.
type loaded[S, E any] struct {
	state  S
	exists bool
	rev    uint64 // last revision, when exists
	// sinceSnapshot counts the events folded after the snapshot (all of them without one).
	sinceSnapshot  int
	snapshotExists bool
	// dup is the earlier result of the command being handled, when its events were found.
	dup *duplicate[S, E]
}

type duplicate[S, E any] struct {
	state  S
	events []E
	rev    uint64
	pos    uint64
}

func (d *duplicate[S, E]) result() Result[S, E] {
	return Result[S, E]{State: d.state, Events: d.events, Stream: verity.StreamState{Exists: true, Revision: d.rev}, Position: d.pos, Duplicate: true}
}

// load folds a stream, starting from its latest usable snapshot, and looks for the events
// of command id cmdID (when not Nil) on the way.
func (h *CommandHandler[S, C, E]) load(ctx context.Context, stream string, cmdID uuid.UUID) (*loaded[S, E], error) {
	l := &loaded[S, E]{state: h.decider.InitialState()}
	from := uint64(0)
	if h.cfg.SnapshotEvery > 0 {
		snap, found, exists, err := h.readSnapshot(ctx, stream)
		if err != nil {
			return nil, err
		}
		l.snapshotExists = exists
		if found {
			l.state, l.exists, l.rev = snap.state, true, snap.rev
			from = snap.rev + 1
		}
	}
	var wantID uuid.UUID
	if cmdID != uuid.Nil {
		wantID = EventID(cmdID, 0)
	}
	for {
		page, err := h.store.ReadStream(ctx, stream, verity.ReadStreamOptions{From: from, Limit: h.cfg.ReadBatch})
		if errors.Is(err, verity.ErrNotFound) {
			// Never written, or deleted: whatever a snapshot said, the stream is empty now.
			return &loaded[S, E]{state: h.decider.InitialState(), snapshotExists: l.snapshotExists}, nil
		}
		if err != nil {
			return nil, err
		}
		for _, rec := range page {
			l.exists, l.rev = true, rec.Revision
			l.sinceSnapshot++
			ev, err := h.reg.Decode(rec)
			if err != nil {
				if h.reg.skip(err) {
					continue
				}
				return nil, err
			}
			e, ok := ev.Data.(E)
			if !ok {
				return nil, &verity.Error{Kind: verity.Invalid, Op: "load", Stream: stream,
					Message: fmt.Sprintf("event %s@%d of type %q decodes to %T, which is not a %v", rec.ID, rec.Revision, ev.Type, ev.Data, reflect.TypeFor[E]())}
			}
			l.state = h.decider.Evolve(l.state, e)
			if wantID != uuid.Nil && rec.ID == wantID {
				if l.dup == nil {
					l.dup = &duplicate[S, E]{}
				}
				l.dup.events = append(l.dup.events, e)
				l.dup.state, l.dup.rev, l.dup.pos = l.state, rec.Revision, rec.Position
				wantID = EventID(cmdID, len(l.dup.events))
			}
		}
		if len(page) < h.cfg.ReadBatch {
			return l, nil
		}
		from = page[len(page)-1].Revision + 1
	}
}

// snapshot is a decoded snapshot: the state after the stream's event at rev.
type snapshot[S any] struct {
	state S
	rev   uint64
}

// snapshotMeta is the metadata of a snapshot event; the state is its data, encoded with
// the registry's codec.
type snapshotMeta struct {
	Stream   string `json:"stream"`
	Revision uint64 `json:"revision"`
	Version  string `json:"version"`
}

// readSnapshot returns the latest snapshot when it is usable (found), and whether the
// snapshot stream has any event (exists). A snapshot of another version, or one that does
// not decode, is not usable: the stream is folded from its start and a new snapshot
// replaces it.
func (h *CommandHandler[S, C, E]) readSnapshot(ctx context.Context, stream string) (snap snapshot[S], found, exists bool, err error) {
	recs, err := h.store.ReadStream(ctx, h.cfg.SnapshotStream(stream), verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if errors.Is(err, verity.ErrNotFound) {
		return snap, false, false, nil
	}
	if err != nil || len(recs) == 0 {
		return snap, false, false, err
	}
	var meta snapshotMeta
	md, _ := ParseMetadata(recs[0].Metadata)
	raw, ok := md.Extra["snapshot"]
	if !ok || json.Unmarshal(raw, &meta) != nil || meta.Version != h.cfg.SnapshotVersion || meta.Stream != stream {
		return snap, false, true, nil
	}
	state := h.decider.InitialState()
	if err := h.reg.codec.Unmarshal(recs[0].Data, &state); err != nil {
		h.cfg.Logger.Warn("sdk: ignoring a snapshot that does not decode", "stream", stream, "revision", meta.Revision, "err", err)
		return snap, false, true, nil
	}
	return snapshot[S]{state: state, rev: meta.Revision}, true, true, nil
}

// writeSnapshot records state as the state after revision rev. A failure is logged, not
// returned: the command's events are committed, and the next load simply folds more.
func (h *CommandHandler[S, C, E]) writeSnapshot(ctx context.Context, stream string, state S, rev uint64, exists bool) {
	snapStream := h.cfg.SnapshotStream(stream)
	err := func() error {
		data, err := h.reg.codec.Marshal(state)
		if err != nil {
			return err
		}
		md, err := Metadata{}.With("snapshot", snapshotMeta{Stream: stream, Revision: rev, Version: h.cfg.SnapshotVersion})
		if err != nil {
			return err
		}
		meta, err := md.Marshal()
		if err != nil {
			return err
		}
		ev := verity.EventData{ID: uuid.New(), Type: SnapshotEventType, ContentType: h.reg.codec.ContentType(), Data: data, Metadata: meta}
		if _, err := h.store.Append(ctx, snapStream, verity.Any(), ev); err != nil {
			return err
		}
		if !exists {
			_, err := h.store.SetStreamMetadata(ctx, snapStream, verity.Any(), verity.StreamMetadata{MaxCount: uint64(h.cfg.SnapshotKeep)})
			return err
		}
		return nil
	}()
	if err != nil {
		h.cfg.Logger.Warn("sdk: writing a snapshot failed", "stream", snapStream, "revision", rev, "err", err)
	}
}
