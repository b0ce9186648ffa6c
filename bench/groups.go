package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/persistent"
)

// The groups workload: persistent subscriptions (consumer groups). A log of GroupEvents
// events in streams of groupPerStream events, category groupCategory, is written first;
// then each measurement creates a fresh group over that category from its start, joins its
// consumers, and has each of them receive and acknowledge every event it is given, one at
// a time, until every event is handled or opts.Duration passes. The group is deleted
// afterwards.
const (
	// DefaultGroupEvents is how many events the groups workload writes by default.
	DefaultGroupEvents = 200_000
	groupPerStream     = 100   // events per stream of the groups log
	groupCategory      = "grp" // the category of its streams: grp-0, grp-1, ...
	groupConsumers     = 4     // consumers of the throughput measurements
)

// The measurements of the groups workload, as reported in the "strategy" field.
const (
	// GroupRoundTrip: one consumer with at most one event in flight: the latency is from
	// an event's delivery to the next one's, acknowledgement included.
	GroupRoundTrip = "round-trip"
	// GroupRoundRobin: four consumers of a RoundRobin group, each with the default
	// MaxInFlight.
	GroupRoundRobin = "round-robin"
	// GroupPinned: four consumers of a Pinned group (each stream's events to one consumer,
	// in order, which the workload checks), each with the default MaxInFlight.
	GroupPinned = "pinned"
)

// groupShape is one measurement of the groups workload.
type groupShape struct {
	name        string // reported as the strategy
	consumers   int
	maxInFlight int
	strategy    verity.ConsumerStrategy
}

var groupShapes = []groupShape{
	{GroupRoundTrip, 1, 1, verity.RoundRobin},
	{GroupRoundRobin, groupConsumers, verity.DefaultMaxInFlight, verity.RoundRobin},
	{GroupPinned, groupConsumers, verity.DefaultMaxInFlight, verity.Pinned},
}

// groupWorkloads writes the groups log in a fresh store of a system and runs every
// measurement of the groups workload on it. ownlog has no consumer groups: it is left out.
func (r *runner) groupWorkloads(ctx context.Context, sys string) (err error) {
	if sys == systemOwnlog {
		return nil
	}
	dir, err := os.MkdirTemp(r.dataDir, sys+"-groups-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer removeStore(dir)
	s, err := openSystem(ctx, sys, dir, r.opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	events := r.opts.GroupEvents
	streams := events / groupPerStream
	r.prog.set("%s: writing %d events in %d streams for the groups", sys, events, streams)
	start := time.Now()
	err = buildLog(ctx, s, logSpec{prefix: groupCategory + "-", streams: streams, perStream: groupPerStream, chunk: logChunk, writers: logWriters},
		func(done int64) {
			r.prog.set("%s: writing %d events for the groups: %d%% (%.0f events/s)", sys, events,
				done*100/int64(events), float64(done)/time.Since(start).Seconds())
		})
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	gs, err := openGroupSource(s)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := gs.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close groups: %w", cerr))
		}
	}()
	for _, sh := range groupShapes {
		if sh.strategy == verity.Pinned && !gs.pins() {
			continue
		}
		run := 0
		r.measure(ctx, sys, WorkloadGroups, sh.consumers, sh.maxInFlight, func(ctx context.Context) (Result, error) {
			run++
			res, err := runGroup(ctx, gs, fmt.Sprintf("bench-%s-%d", sh.name, run), sh, events, r.opts.Duration)
			res.Streams = streams
			return res, err
		})
	}
	return nil
}

// groupSource is a system's consumer groups, as the groups workload drives them. All
// methods may be called concurrently, except close.
type groupSource interface {
	// create makes a group over the groups log, from its start, with sh's strategy.
	create(ctx context.Context, name string, sh groupShape) error
	// join connects a consumer, the i-th of its group, with at most maxInFlight events
	// unacknowledged.
	join(ctx context.Context, name string, i, maxInFlight int) (groupConsumer, error)
	// drop deletes the group.
	drop(ctx context.Context, name string) error
	// pins reports whether the system has a Pinned strategy.
	pins() bool
	close() error
}

// groupConsumer is one consumer: next and ack are called from one goroutine.
type groupConsumer interface {
	next(ctx context.Context) (groupEvent, error)
	ack(ctx context.Context, e groupEvent) error
	close() error
}

// groupEvent is a delivered event: its stream, its order within the stream, and what
// acknowledges it (id for Verity, msg for NATS).
type groupEvent struct {
	stream string
	order  uint64
	id     uuid.UUID
	msg    jetstream.Msg
}

func openGroupSource(s system) (groupSource, error) {
	switch s := s.(type) {
	case *serverStore:
		// The Go client implements verity.Groups over the server's.
		gs, ok := s.s.(verity.Groups)
		if !ok {
			return nil, fmt.Errorf("the client (%T) has no consumer groups", s.s)
		}
		return verityGroups{gs: gs}, nil
	case *verityStore:
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		m, err := persistent.New(s.s, persistent.Config{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("persistent subscriptions: %w", err)
		}
		return verityGroups{gs: m, closeFn: m.Close}, nil
	case *natsStore:
		return natsGroups{s: s}, nil
	}
	return nil, fmt.Errorf("%T has no consumer groups", s)
}

// runGroup runs one measurement on a fresh group named name; see groupShape.
func runGroup(ctx context.Context, gs groupSource, name string, sh groupShape, events int, dur time.Duration) (_ Result, err error) {
	if err := gs.create(ctx, name, sh); err != nil {
		return Result{}, fmt.Errorf("create group %s: %w", name, err)
	}
	defer func() {
		if derr := gs.drop(context.WithoutCancel(ctx), name); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete group %s: %w", name, derr))
		}
	}()
	consumers := make([]groupConsumer, 0, sh.consumers)
	defer func() {
		for i, c := range consumers {
			if cerr := c.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close consumer %d: %w", i, cerr))
			}
		}
	}()
	for i := range sh.consumers {
		c, err := gs.join(ctx, name, i, sh.maxInFlight)
		if err != nil {
			return Result{}, fmt.Errorf("join group %s: %w", name, err)
		}
		consumers = append(consumers, c)
	}

	var (
		hists   = make([]histogram, len(consumers))
		order   = make([]map[string]uint64, len(consumers)) // per consumer: a stream's last order, +1
		handled atomic.Int64
		end     atomic.Int64 // when the last event was handled, in ns since start
		wg      sync.WaitGroup
		start   = time.Now()
	)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	timer := time.AfterFunc(dur, func() { stop(errTimeUp) })
	defer timer.Stop()
	for i, c := range consumers {
		order[i] = map[string]uint64{}
		wg.Go(func() {
			var last time.Time
			for {
				e, err := c.next(runCtx)
				if err != nil {
					if runCtx.Err() == nil {
						stop(fmt.Errorf("consumer %d: receive: %w", i, err))
					}
					return
				}
				now := time.Now()
				if !last.IsZero() {
					hists[i].record(now.Sub(last))
				}
				last = now
				if sh.strategy == verity.Pinned {
					if prev := order[i][e.stream]; prev > e.order {
						stop(fmt.Errorf("consumer %d: stream %s: event %d delivered after event %d", i, e.stream, e.order, prev-1))
						return
					}
					order[i][e.stream] = e.order + 1
				}
				if err := c.ack(runCtx, e); err != nil {
					if runCtx.Err() == nil {
						stop(fmt.Errorf("consumer %d: ack: %w", i, err))
					}
					return
				}
				if handled.Add(1) == int64(events) {
					end.Store(int64(time.Since(start)))
					stop(errAllHandled)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errAllHandled):
		elapsed = time.Duration(end.Load())
	case errors.Is(cause, errTimeUp):
		elapsed = dur
	case ctx.Err() != nil:
		return Result{}, ctx.Err()
	default:
		return Result{}, cause
	}
	if sh.strategy == verity.Pinned {
		// Each stream went to one consumer.
		owner := map[string]int{}
		for i, m := range order {
			for stream := range m {
				if j, ok := owner[stream]; ok {
					return Result{}, fmt.Errorf("stream %s delivered to consumers %d and %d", stream, j, i)
				}
				owner[stream] = i
			}
		}
	}
	var h histogram
	for i := range hists {
		h.merge(&hists[i])
	}
	n := handled.Load()
	return Result{
		EventsPerSec: float64(n) / elapsed.Seconds(),
		P50ms:        ms(h.quantile(0.50)),
		P99ms:        ms(h.quantile(0.99)),
		Events:       n,
		ElapsedS:     elapsed.Seconds(),
		Ops:          int64(h.n),
		Strategy:     sh.name,
	}, nil
}

// Why a measurement of the groups workload stopped, when nothing failed.
var (
	errTimeUp     = errors.New("duration passed")
	errAllHandled = errors.New("every event handled")
)

// verityGroups drives verity.Groups: package persistent over the embedded engine, or the
// Go client over a server.
type verityGroups struct {
	gs      verity.Groups
	closeFn func() error // nil when the system owns gs
}

func (v verityGroups) create(ctx context.Context, name string, sh groupShape) error {
	return v.gs.CreateGroup(ctx, verity.GroupSpec{
		Stream:   verity.AllStream,
		Group:    name,
		Filter:   verity.Filter{Categories: []string{groupCategory}},
		Settings: verity.GroupSettings{Strategy: sh.strategy},
	})
}

func (v verityGroups) join(ctx context.Context, name string, i, maxInFlight int) (groupConsumer, error) {
	c, err := v.gs.JoinGroup(ctx, verity.AllStream, name, verity.JoinOptions{MaxInFlight: maxInFlight, Name: fmt.Sprintf("bench-%d", i)})
	if err != nil {
		return nil, err
	}
	return verityConsumer{c}, nil
}

func (v verityGroups) drop(ctx context.Context, name string) error {
	return v.gs.DeleteGroup(ctx, verity.AllStream, name)
}

func (v verityGroups) pins() bool { return true }

func (v verityGroups) close() error {
	if v.closeFn == nil {
		return nil
	}
	return v.closeFn()
}

type verityConsumer struct{ c verity.GroupConsumer }

func (v verityConsumer) next(ctx context.Context) (groupEvent, error) {
	m, err := v.c.Recv(ctx)
	if err != nil {
		return groupEvent{}, err
	}
	return groupEvent{stream: m.Event.Stream, order: m.Event.Revision, id: m.Event.ID}, nil
}

func (v verityConsumer) ack(ctx context.Context, e groupEvent) error { return v.c.Ack(ctx, e.id) }

func (v verityConsumer) close() error { return v.c.Close() }

// natsGroups are JetStream durable pull consumers with explicit acks: a group is one
// consumer whose messages its subscribers (the group's consumers, each on a connection of
// its own as far as there are connections) share. MaxAckPending is the consumers'
// MaxInFlight added up, and each subscriber pulls at most its MaxInFlight messages at a
// time. JetStream has no Pinned strategy for one consumer's subscribers.
type natsGroups struct{ s *natsStore }

func (g natsGroups) create(ctx context.Context, name string, sh groupShape) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	_, err := g.s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       verity.DefaultMessageTimeout,
		MaxDeliver:    verity.DefaultMaxRetryCount + 1,
		MaxAckPending: sh.consumers * sh.maxInFlight,
		FilterSubject: natsSubjPrefix + ">", // the store holds the groups log alone
	})
	return err
}

func (g natsGroups) join(ctx context.Context, name string, i, maxInFlight int) (groupConsumer, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cons, err := g.s.js[i%len(g.s.js)].Consumer(ctx, natsStreamName, name)
	if err != nil {
		return nil, err
	}
	if maxInFlight == 1 {
		// A lone event in flight: one pull request per event. (A Messages iterator with
		// MaxAckPending 1 stalls now and then until the client reports missed heartbeats.)
		return natsConsumer{cons: cons}, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(maxInFlight))
	if err != nil {
		return nil, err
	}
	return natsConsumer{it: it}, nil
}

func (g natsGroups) drop(ctx context.Context, name string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return g.s.stream.DeleteConsumer(ctx, name)
}

func (g natsGroups) pins() bool   { return false }
func (g natsGroups) close() error { return nil }

// natsConsumer pulls one message at a time (cons) or keeps a pull open (it).
type natsConsumer struct {
	cons jetstream.Consumer
	it   jetstream.MessagesContext
}

func (c natsConsumer) next(ctx context.Context) (groupEvent, error) {
	var (
		m   jetstream.Msg
		err error
	)
	if c.it != nil {
		m, err = c.it.Next(jetstream.NextContext(ctx))
	} else {
		m, err = c.cons.Next(jetstream.FetchContext(ctx))
	}
	if err != nil {
		return groupEvent{}, err
	}
	md, err := m.Metadata()
	if err != nil {
		return groupEvent{}, err
	}
	return groupEvent{stream: m.Subject(), order: md.Sequence.Stream, msg: m}, nil
}

// ack is JetStream's usual Ack: published without waiting for the server's answer.
func (c natsConsumer) ack(_ context.Context, e groupEvent) error { return e.msg.Ack() }

func (c natsConsumer) close() error {
	if c.it != nil {
		c.it.Stop()
	}
	return nil
}
