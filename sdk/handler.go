package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// HandlerFunc handles one decoded event. Returning nil acknowledges it. A consumer group
// runner retries an event whose handler returned an error (parking it once the group's
// MaxRetryCount is reached) unless the error is marked with Park. A handler may be called
// again for an event it handled before (a redelivery after a crash or a timeout): it must
// be idempotent, e.g. by issuing commands with ReactingTo.
type HandlerFunc func(ctx context.Context, e Event) error

// Middleware wraps a HandlerFunc.
type Middleware func(HandlerFunc) HandlerFunc

// parkError marks a handler error as permanent.
type parkError struct{ err error }

func (p parkError) Error() string { return p.err.Error() }
func (p parkError) Unwrap() error { return p.err }

// Park marks a handler's error as permanent: a consumer group runner parks the event at
// once instead of retrying it.
func Park(err error) error {
	if err == nil {
		return nil
	}
	return parkError{err: err}
}

// IsPark reports whether err, or an error it wraps, was marked with Park: what a test of a
// handler checks to see that an event would be parked.
func IsPark(err error) bool {
	var p parkError
	return errors.As(err, &p)
}

func isPark(err error) bool { return IsPark(err) }

// Defaults of GroupRunnerConfig.
const (
	DefaultRejoinDelay = 100 * time.Millisecond
)

// closingAckTimeout bounds the ack of an event whose handler finished while its
// GroupRunner was closing.
const closingAckTimeout = 5 * time.Second

// GroupRunnerConfig shapes a GroupRunner. Group is required.
type GroupRunnerConfig struct {
	// Stream is the group's source: a stream, or "" (or verity.AllStream) for the log.
	Stream string
	// Group is the group's name. Required.
	Group string
	// Consumers is how many competing consumers to join, each handling its events one at
	// a time; default 1.
	Consumers int
	// MaxInFlight is each consumer's back-pressure (see verity.JoinOptions); default
	// verity.DefaultMaxInFlight.
	MaxInFlight int
	// Name describes the consumers in GroupInfo; each gets a "/n" suffix. Default the
	// group's name.
	Name string
	// RejoinDelay: a consumer disconnected by the server (group updated or restarted)
	// joins again after this long; default DefaultRejoinDelay.
	RejoinDelay time.Duration
	// Logger receives decode failures, parked events and rejoins; default slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c GroupRunnerConfig) Validate() error {
	switch {
	case c.Group == "":
		return verity.Errorf(verity.Invalid, "group runner", "Group is required")
	case c.Consumers < 0:
		return verity.Errorf(verity.Invalid, "group runner", "Consumers must be ≥ 0, got %d", c.Consumers)
	case c.MaxInFlight < 0:
		return verity.Errorf(verity.Invalid, "group runner", "MaxInFlight must be ≥ 0, got %d", c.MaxInFlight)
	case c.RejoinDelay < 0:
		return verity.Errorf(verity.Invalid, "group runner", "RejoinDelay must be ≥ 0, got %v", c.RejoinDelay)
	}
	return nil
}

func (c GroupRunnerConfig) withDefaults() GroupRunnerConfig {
	if c.Consumers == 0 {
		c.Consumers = 1
	}
	if c.Name == "" {
		c.Name = c.Group
	}
	if c.RejoinDelay == 0 {
		c.RejoinDelay = DefaultRejoinDelay
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// GroupRunner runs a HandlerFunc on the events of a persistent subscription (consumer
// group): it joins the group with N consumers, decodes each event through a Registry and
// calls the handler. Success is acked; a handler error is nacked for retry (the server
// parks the event after the group's MaxRetryCount), an error marked with Park and an
// event that does not decode (a poison event) are parked at once, and an unregistered
// type is acked without handling when the registry skips unknown types. It stops when its
// context ends or Close is called.
type GroupRunner struct {
	groups  verity.Groups
	reg     *Registry
	handler HandlerFunc
	cfg     GroupRunnerConfig

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error // the first error that stopped a consumer
}

// StartGroupRunner joins cfg.Consumers consumers to the group (which must exist; create
// it with Groups.CreateGroup) and starts handling events until ctx ends or Close is
// called. Errors: Invalid (bad config, nil arguments), and JoinGroup's errors (NotFound
// for a missing group, ResourceExhausted past MaxConsumers), in which case nothing is left
// running.
func StartGroupRunner(ctx context.Context, groups verity.Groups, reg *Registry, cfg GroupRunnerConfig, h HandlerFunc) (*GroupRunner, error) {
	const op = "group runner"
	switch {
	case groups == nil:
		return nil, verity.Errorf(verity.Invalid, op, "groups is nil")
	case reg == nil:
		return nil, verity.Errorf(verity.Invalid, op, "registry is nil")
	case h == nil:
		return nil, verity.Errorf(verity.Invalid, op, "handler is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &GroupRunner{groups: groups, reg: reg, handler: h, cfg: cfg}
	consumers := make([]verity.GroupConsumer, 0, cfg.Consumers)
	for i := range cfg.Consumers {
		c, err := r.join(ctx, i)
		if err != nil {
			for _, c := range consumers {
				c.Close()
			}
			return nil, err
		}
		consumers = append(consumers, c)
	}
	ctx, r.cancel = context.WithCancel(ctx)
	for i, c := range consumers {
		r.wg.Add(1)
		go r.consume(ctx, i, c)
	}
	return r, nil
}

func (r *GroupRunner) join(ctx context.Context, i int) (verity.GroupConsumer, error) {
	return r.groups.JoinGroup(ctx, r.cfg.Stream, r.cfg.Group, verity.JoinOptions{MaxInFlight: r.cfg.MaxInFlight, Name: fmt.Sprintf("%s/%d", r.cfg.Name, i)})
}

// Close stops the consumers and waits for them: an event being handled is finished
// first (its handler sees its context end; the event is acked if the handler returns
// nil), and unacknowledged events go back to the group. It returns the error that stopped a consumer early, if any (NotFound once the
// group was deleted), and is idempotent.
func (r *GroupRunner) Close() error {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *GroupRunner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// consume runs one consumer until ctx ends or the group goes away, joining again when the
// server disconnects it.
func (r *GroupRunner) consume(ctx context.Context, i int, c verity.GroupConsumer) {
	defer r.wg.Done()
	log := r.cfg.Logger.With("group", r.cfg.Group, "stream", r.cfg.Stream, "consumer", i)
	for {
		err := r.serve(ctx, c, log)
		c.Close() // every return below leaves c nil: nothing else to close
		c = nil
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, verity.ErrUnavailable) {
			r.fail(err)
			log.Error("sdk: consumer stopped", "err", err)
			return
		}
		// Disconnected by the server (group updated or restarted): join again.
		for c == nil {
			if sleep(ctx, r.cfg.RejoinDelay) != nil {
				return
			}
			c, err = r.join(ctx, i)
			if err != nil && ctx.Err() == nil && !errors.Is(err, verity.ErrUnavailable) {
				r.fail(err)
				log.Error("sdk: consumer could not rejoin", "err", err)
				return
			}
			if err != nil {
				c = nil
			}
		}
	}
}

// serve handles events from one connection of a consumer until an error.
func (r *GroupRunner) serve(ctx context.Context, c verity.GroupConsumer, log *slog.Logger) error {
	for {
		msg, err := c.Recv(ctx)
		if err != nil {
			return err
		}
		rec := msg.Event
		ev, err := r.reg.Decode(rec)
		if err != nil {
			if r.reg.skip(err) {
				if err := c.Ack(ctx, rec.ID); err != nil {
					return err
				}
				continue
			}
			log.Warn("sdk: parking an event that does not decode", "event", rec.ID, "type", rec.Type, "err", err)
			if err := c.Nack(ctx, verity.NackPark, err.Error(), rec.ID); err != nil {
				return err
			}
			continue
		}
		ev.RetryCount = msg.RetryCount
		herr := r.handler(ctx, ev)
		switch {
		case herr == nil:
			// Handled: ack it even if the runner began to stop meanwhile, or the group
			// would hand the event out again; the bound keeps Close from waiting long
			// on a connection that is gone.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closingAckTimeout)
			err = c.Ack(actx, rec.ID)
			cancel()
		case ctx.Err() != nil:
			// Stopping: leave the event unacknowledged; the group hands it out again.
			return ctx.Err()
		case isPark(herr):
			log.Warn("sdk: parking an event its handler refused", "event", rec.ID, "type", rec.Type, "err", herr)
			err = c.Nack(ctx, verity.NackPark, herr.Error(), rec.ID)
		default:
			err = c.Nack(ctx, verity.NackRetry, herr.Error(), rec.ID)
		}
		if err != nil {
			return err
		}
	}
}

// SubscriptionRunnerConfig shapes a SubscriptionRunner: where to read from. The zero value
// follows the whole log from its start.
type SubscriptionRunnerConfig struct {
	// Stream to follow; "" follows the log through Filter.
	Stream string
	// From is the first revision (stream) or position (log) to handle, inclusive: one past
	// the checkpoint the handler keeps.
	From uint64
	// FromEnd handles only events committed after the start.
	FromEnd bool
	// Filter selects the log's events; it must be zero for a stream.
	Filter verity.Filter
}

// SubscriptionRunner runs a HandlerFunc on a catch-up subscription (Store.Subscribe): the
// history, then live events, in order, one at a time. The server keeps no checkpoint: the
// handler keeps its own (e.g. a view's last position) and the next start passes it in
// From. A handler error, or an event that does not decode (unless the registry skips
// unknown types), stops the runner; Close returns that error.
type SubscriptionRunner struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartSubscriptionRunner subscribes and starts handling events until ctx ends, Close is
// called or the handler fails. Errors: Invalid (nil arguments) and Subscribe's errors.
func StartSubscriptionRunner(ctx context.Context, store verity.Store, reg *Registry, cfg SubscriptionRunnerConfig, h HandlerFunc) (*SubscriptionRunner, error) {
	const op = "subscription runner"
	switch {
	case store == nil:
		return nil, verity.Errorf(verity.Invalid, op, "store is nil")
	case reg == nil:
		return nil, verity.Errorf(verity.Invalid, op, "registry is nil")
	case h == nil:
		return nil, verity.Errorf(verity.Invalid, op, "handler is nil")
	}
	ctx, cancel := context.WithCancel(ctx)
	sub, err := store.Subscribe(ctx, verity.SubscribeOptions{Stream: cfg.Stream, From: cfg.From, FromEnd: cfg.FromEnd, Filter: cfg.Filter})
	if err != nil {
		cancel()
		return nil, err
	}
	r := &SubscriptionRunner{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer sub.Close()
		r.err = runSubscription(ctx, sub, reg, h)
	}()
	return r, nil
}

func runSubscription(ctx context.Context, sub verity.Subscription, reg *Registry, h HandlerFunc) error {
	for {
		msg, err := sub.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if msg.Kind != verity.MessageEvent {
			continue
		}
		ev, err := reg.Decode(msg.Event)
		if err != nil {
			if reg.skip(err) {
				continue
			}
			return err
		}
		if err := h(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// Done is closed once the runner has stopped.
func (r *SubscriptionRunner) Done() <-chan struct{} { return r.done }

// Close stops the runner, waits for it, and returns the error that stopped it early, if
// any. It is idempotent.
func (r *SubscriptionRunner) Close() error {
	r.cancel()
	<-r.done
	return r.err
}
