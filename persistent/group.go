package persistent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// entry is one event the group holds: read from the source (or read back for a replay of
// a parked event), waiting, in flight, or done.
type entry struct {
	ev       verity.RecordedEvent
	pos      uint64 // revision (stream group) or position (log group)
	key      string // the pin key
	retry    int
	done     bool
	marker   bool // a place the checkpoint may pass, not an event
	owner    *consumer
	deadline time.Time
	rec      *parkRec // set for a replayed parked event
}

// parkRec is a parked event as the group remembers it.
type parkRec struct {
	rev                uint64 // in the parked stream
	stream             string
	pos                uint64
	revision, position uint64
	id                 uuid.UUID
	done               bool // replayed and handled
}

type pendingPark struct {
	e      *entry
	reason string
	held   bool
}

// quarantine is an ordered-quarantine stream: the source positions of its parked (not
// replayed) events, and how many of its parked events are back in line.
type quarantine struct {
	parked         []parkedRef
	inLine         int
	replayInFlight int
}

type parkedRef struct {
	pos uint64
	id  uuid.UUID
}

func (q *quarantine) firstParkedBefore(pos uint64) (uuid.UUID, bool) {
	var best *parkedRef
	for i := range q.parked {
		if r := &q.parked[i]; r.pos < pos && (best == nil || r.pos < best.pos) {
			best = r
		}
	}
	if best == nil {
		return uuid.UUID{}, false
	}
	return best.id, true
}

func (q *quarantine) removeParked(pos uint64, id uuid.UUID) {
	for i, r := range q.parked {
		if r.pos == pos && r.id == id {
			q.parked = slices.Delete(q.parked, i, i+1)
			return
		}
	}
}

type opKind uint8

const (
	opAck opKind = iota + 1
	opNack
	opLeave
	opJoin
	opInfo
	opReplay
)

type op struct {
	kind   opKind
	c      *consumer
	ids    []uuid.UUID
	action verity.NackAction
	reason string
	join   verity.JoinOptions
	limit  int
	reply  chan reply
}

type reply struct {
	c    *consumer
	info verity.GroupInfo
	err  error
}

type inMsg struct {
	msg verity.SubscriptionMessage
	err error
}

type stopReq struct {
	err        error // what the consumers' Recv returns
	checkpoint bool
}

// group is one consumer group: a goroutine (the actor, run) owns every field below the
// channels; everyone else talks to it through ops.
type group struct {
	m            *Manager
	def          definition
	set          effective
	log          *slog.Logger
	logGroup     bool
	parkedStream string
	cpStream     string

	ops   chan op
	stopc chan stopReq
	done  chan struct{}
	// ctx bounds the group's store calls; stop cancels it once the group had
	// Config.StopTimeout to finish them.
	ctx    context.Context
	cancel context.CancelFunc

	loaded     bool
	retryAt    time.Time
	in         chan inMsg
	readCancel context.CancelFunc
	readSub    verity.Subscription
	readDone   chan struct{}
	next       uint64
	caughtUp   bool

	consumers []*consumer
	nextID    int
	rr        int
	pins      map[string]*consumer

	deque                    []*entry
	head                     int
	cp                       uint64
	cpOK                     bool
	wcp                      uint64
	wcpOK                    bool
	cursor, wcursor, upTo    int64
	acksSince                int
	dirtySince               time.Time // when the first ack since the last write came
	markSince                time.Time // when markers first moved the checkpoint since the last write
	metaSet                  bool
	newQ, retryQ, replayQ    []*entry
	replayPending            []*parkRec
	line                     []*parkRec
	parked                   []*parkRec
	pending                  []pendingPark
	quar                     map[string]*quarantine
	alreadyParked            map[uuid.UUID]uint64
	lastKnown                uint64
	seen                     bool
	delivered, acked, nacked uint64
	timedOut                 uint64
}

func newGroup(m *Manager, def definition) *group {
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{
		ctx: ctx, cancel: cancel,
		m: m, def: def, set: effectiveOf(def.Settings),
		log:          m.cfg.Logger.With("component", "persistent", "source", def.Stream, "group", def.Group),
		logGroup:     def.Stream == verity.AllStream,
		parkedStream: verity.ParkedStreamOf(def.Stream, def.Group),
		cpStream:     verity.CheckpointStreamOf(def.Stream, def.Group),
		ops:          make(chan op, 256),
		stopc:        make(chan stopReq, 1),
		done:         make(chan struct{}),
		pins:         map[string]*consumer{},
		quar:         map[string]*quarantine{},
		cursor:       -1, wcursor: -1, upTo: -1,
	}
	go g.run()
	return g
}

// stop ends the actor and waits for it. The actor has Config.StopTimeout to finish its
// store calls (the final checkpoint write among them); then they are cancelled, so a store
// that hangs cannot hang the caller.
func (g *group) stop(req stopReq) {
	select {
	case g.stopc <- req:
	default: // already stopping
	}
	t := time.NewTimer(g.m.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-g.done:
	case <-t.C:
		g.log.Warn("group did not stop in time; cancelling its store calls", "timeout", g.m.cfg.StopTimeout)
		g.cancel()
		<-g.done
	}
}

// stopped reports whether the actor has ended.
func (g *group) stopped() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// send hands an op to the actor.
func (g *group) send(ctx context.Context, o op) error {
	select {
	case g.ops <- o:
		return nil
	case <-g.done:
		return verity.Errorf(verity.Unavailable, "group", "group %q on %q stopped: join again", g.def.Group, g.def.Stream)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call sends an op and waits for its reply.
func (g *group) call(ctx context.Context, o op) (reply, error) {
	o.reply = make(chan reply, 1)
	if err := g.send(ctx, o); err != nil {
		return reply{}, err
	}
	select {
	case r := <-o.reply:
		return r, r.err
	case <-g.done:
		select {
		case r := <-o.reply: // answered just before stopping
			return r, r.err
		default:
		}
		return reply{}, verity.Errorf(verity.Unavailable, "group", "group %q on %q stopped", g.def.Group, g.def.Stream)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func (g *group) tickPeriod() time.Duration {
	p := 100 * time.Millisecond
	if g.set.timeout > 0 && g.set.timeout/4 < p {
		p = g.set.timeout / 4
	}
	if g.set.cpAfter > 0 && g.set.cpAfter < p {
		p = g.set.cpAfter
	}
	return max(p, 5*time.Millisecond)
}

func (g *group) run() {
	defer close(g.done)
	defer g.cancel()
	ticker := time.NewTicker(g.tickPeriod())
	defer ticker.Stop()
	g.tryLoad()
	for {
		var in chan inMsg
		if g.readSub != nil && g.room() {
			in = g.in
		}
		select {
		case req := <-g.stopc:
			g.shutdown(req)
			return
		case o := <-g.ops:
			g.handle(o)
		case msg := <-in:
			g.onMsg(msg)
		case <-ticker.C:
			g.onTick()
		}
	drain:
		for range 64 {
			select {
			case o := <-g.ops:
				g.handle(o)
				continue
			default:
			}
			if g.readSub == nil || !g.room() {
				break
			}
			select {
			case msg := <-g.in:
				g.onMsg(msg)
			default:
				break drain
			}
		}
		g.step()
	}
}

// room says whether the group may pull more of its source: its buffer of new events has
// room, and the events held for the checkpoint stay bounded.
func (g *group) room() bool {
	buf := g.set.historyBuf
	if g.caughtUp {
		buf = g.set.liveBuf
	}
	return len(g.newQ) < buf && len(g.deque)-g.head < 4*buf
}

func (g *group) step() {
	g.dispatch()
	if g.flushParks() {
		g.dispatch()
		g.flushParks()
	}
	g.maybeCheckpoint(g.m.cfg.Now())
}

func (g *group) onTick() {
	now := g.m.cfg.Now()
	if !g.loaded {
		if now.After(g.retryAt) {
			g.tryLoad()
		}
		return
	}
	if g.readSub == nil && now.After(g.retryAt) {
		g.startReader()
	}
	if g.set.timeout > 0 {
		var late []*entry
		for _, c := range g.consumers {
			for _, e := range c.inflight {
				if !now.Before(e.deadline) {
					late = append(late, e)
				}
			}
		}
		slices.SortFunc(late, func(a, b *entry) int { return cmp.Compare(a.pos, b.pos) })
		for _, e := range late {
			g.removeFlight(e)
			g.timedOut++
			g.fail(e, "message timeout")
		}
	}
}

// tryLoad reads the group's checkpoint and parked events, then starts reading the source.
func (g *group) tryLoad() {
	if err := g.load(); err != nil {
		g.log.Error("cannot load group state; retrying", "err", err)
		g.retryAt = g.m.cfg.Now().Add(g.m.cfg.RetryDelay)
		return
	}
	g.loaded = true
	g.startReader()
}

func (g *group) load() error {
	ctx := g.ctx
	st := g.m.store
	g.cp, g.cpOK, g.cursor, g.upTo = 0, false, -1, -1
	evs, err := st.ReadStream(ctx, g.cpStream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil && !errors.Is(err, verity.ErrNotFound) {
		return err
	}
	if len(evs) == 1 {
		var rec checkpointRecord
		if err := json.Unmarshal(evs[0].Data, &rec); err != nil {
			return verity.Errorf(verity.Internal, "load group", "%s revision %d: %v", g.cpStream, evs[0].Revision, err)
		}
		if rec.Incarnation == g.def.Incarnation {
			g.cp, g.cpOK, g.cursor = rec.Checkpoint, rec.Checkpointed, rec.ParkedCursor
			g.upTo = g.cursor
		}
	}
	g.wcp, g.wcpOK, g.wcursor = g.cp, g.cpOK, g.cursor
	var recs []*parkRec
	err = readStreamAll(ctx, st, g.parkedStream, uint64(g.cursor+1), func(ev verity.RecordedEvent) error {
		switch ev.Type {
		case EventTypeParked:
			var p parkedRecord
			if err := json.Unmarshal(ev.Data, &p); err != nil || p.Incarnation != g.def.Incarnation {
				return nil
			}
			recs = append(recs, g.parkRecOf(ev.Revision, p))
		case EventTypeReplayParked:
			var r replayRecord
			if err := json.Unmarshal(ev.Data, &r); err != nil || r.Incarnation != g.def.Incarnation {
				return nil
			}
			g.upTo = max(g.upTo, int64(r.UpTo))
		}
		return nil
	})
	if err != nil {
		return err
	}
	g.alreadyParked = map[uuid.UUID]uint64{}
	for _, r := range recs {
		if !g.cpOK || r.pos > g.cp {
			g.alreadyParked[r.id] = r.pos
		}
		if int64(r.rev) <= g.upTo {
			g.line = append(g.line, r)
			g.replayPending = append(g.replayPending, r)
			if g.set.ordered {
				g.quarOf(r.stream).inLine++
			}
			continue
		}
		g.parked = append(g.parked, r)
		if g.set.ordered {
			q := g.quarOf(r.stream)
			q.parked = append(q.parked, parkedRef{r.pos, r.id})
		}
	}
	g.advanceCursor()
	g.next = g.def.Settings.From
	if g.logGroup {
		g.next = max(g.next, 1)
	}
	if g.cpOK {
		g.next = g.cp + 1
	}
	return nil
}

func (g *group) parkRecOf(rev uint64, p parkedRecord) *parkRec {
	r := &parkRec{rev: rev, stream: p.Stream, revision: p.Revision, position: p.Position, id: p.EventID, pos: p.Revision}
	if g.logGroup {
		r.pos = p.Position
	}
	return r
}

func (g *group) quarOf(stream string) *quarantine {
	q := g.quar[stream]
	if q == nil {
		q = &quarantine{}
		g.quar[stream] = q
	}
	return q
}

func (g *group) liftIfClear(stream string) {
	if q := g.quar[stream]; q != nil && len(q.parked) == 0 && q.inLine == 0 && q.replayInFlight == 0 {
		delete(g.quar, stream)
	}
}

func (g *group) startReader() {
	ctx, cancel := context.WithCancel(g.ctx)
	opts := verity.SubscribeOptions{Stream: g.def.Stream, From: g.next, CheckpointEvery: max(g.set.batch, 1)}
	if g.logGroup {
		opts.Stream, opts.Filter = "", g.def.Filter
	}
	sub, err := g.m.store.Subscribe(ctx, opts)
	if err != nil {
		cancel()
		g.log.Error("cannot subscribe to the source; retrying", "err", err)
		g.retryAt = g.m.cfg.Now().Add(g.m.cfg.RetryDelay)
		return
	}
	in, done := make(chan inMsg, max(g.set.batch, 1)), make(chan struct{})
	g.in, g.readCancel, g.readSub, g.readDone, g.caughtUp = in, cancel, sub, done, false
	go func() {
		defer close(done)
		for {
			msg, err := sub.Recv(ctx)
			if ctx.Err() != nil {
				return
			}
			select {
			case in <- inMsg{msg: msg, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

func (g *group) stopReader() {
	if g.readSub == nil {
		return
	}
	g.readCancel()
	g.readSub.Close()
	<-g.readDone
	g.readSub, g.in = nil, nil
}

func (g *group) onMsg(m inMsg) {
	if m.err != nil {
		g.log.Error("source subscription failed; resubscribing", "err", m.err)
		g.stopReader()
		g.retryAt = g.m.cfg.Now().Add(g.m.cfg.RetryDelay)
		return
	}
	msg := m.msg
	switch msg.Kind {
	case verity.MessageEvent:
		g.onEvent(msg.Event)
	case verity.MessageCaughtUp:
		g.caughtUp = true
		if g.logGroup {
			g.addMarker(msg.Position)
		}
	case verity.MessageCheckpoint:
		if g.logGroup {
			g.addMarker(msg.Position)
		}
	}
}

func (g *group) see(pos uint64) {
	if !g.seen || pos > g.lastKnown {
		g.lastKnown, g.seen = pos, true
	}
	g.next = max(g.next, pos+1)
}

func (g *group) onEvent(ev verity.RecordedEvent) {
	pos := ev.Revision
	if g.logGroup {
		pos = ev.Position
	}
	g.see(pos)
	if g.logGroup && isInternalStream(ev.Stream) {
		g.addMarker(pos)
		return
	}
	if p, ok := g.alreadyParked[ev.ID]; ok && p == pos {
		delete(g.alreadyParked, ev.ID)
		g.addMarker(pos)
		return
	}
	e := &entry{ev: ev, pos: pos, key: g.keyOf(ev)}
	g.deque = append(g.deque, e)
	g.newQ = append(g.newQ, e)
}

// addMarker records that everything up to pos was considered; the checkpoint may pass it
// once every event before it is handled. Position 0 (a log group's marker on an empty log)
// says nothing; revision 0 of a stream group is an event.
func (g *group) addMarker(pos uint64) {
	if (g.logGroup && pos == 0) || (g.cpOK && pos <= g.cp) {
		return
	}
	g.see(pos)
	if len(g.deque) == g.head {
		g.cp, g.cpOK = pos, true
		g.noteMarked()
		return
	}
	if last := g.deque[len(g.deque)-1]; last.pos < pos {
		g.deque = append(g.deque, &entry{pos: pos, done: true, marker: true})
	}
}

// noteMarked starts the checkpoint timer for a move of the checkpoint made by markers
// (events the filter leaves out, internal streams, events already parked) rather than by
// acks: it is written once CheckpointAfter has passed since it began, so a narrow log
// group on a busy log keeps its checkpoint (and Lag) current at a bounded write rate. A
// move over nothing but checkpoints this Manager wrote starts nothing: else log groups
// would write checkpoints for each other's checkpoints for ever.
func (g *group) noteMarked() {
	if !g.markSince.IsZero() {
		return
	}
	if g.passedOnlyOwn() {
		return
	}
	g.markSince = g.m.cfg.Now()
}

// passedOnlyOwn reports whether a log group's checkpoint moved since the last write over
// nothing but checkpoints this Manager wrote.
func (g *group) passedOnlyOwn() bool {
	if !g.logGroup {
		return false
	}
	from := g.startPos() - 1
	if g.wcpOK {
		from = g.wcp
	}
	return g.m.onlyOwn(from, g.cp)
}

// advance moves the in-memory checkpoint over every handled event at the head.
func (g *group) advance() {
	marked := false
	for g.head < len(g.deque) && g.deque[g.head].done {
		marked = marked || g.deque[g.head].marker
		g.cp, g.cpOK = g.deque[g.head].pos, true
		g.deque[g.head] = nil
		g.head++
	}
	if marked {
		g.noteMarked()
	}
	if g.head == len(g.deque) {
		g.deque, g.head = g.deque[:0], 0
	} else if g.head > 1024 && g.head*2 > len(g.deque) {
		n := copy(g.deque, g.deque[g.head:])
		clear(g.deque[n:])
		g.deque, g.head = g.deque[:n], 0
	}
}

// advanceCursor moves the parked cursor over every replayed parked event handled.
func (g *group) advanceCursor() {
	i := 0
	for i < len(g.line) && g.line[i].done {
		g.cursor = int64(g.line[i].rev)
		i++
	}
	g.line = g.line[i:]
	if len(g.line) == 0 {
		g.cursor = g.upTo
	}
}

func (g *group) keyOf(ev verity.RecordedEvent) string {
	if g.set.strategy == verity.PinnedByCorrelation {
		if id := correlationOf(ev.Metadata); id != "" {
			return "c:" + id
		}
	}
	return "s:" + ev.Stream
}

// correlationOf reads "$correlationId" (or "correlationId") from JSON metadata.
func correlationOf(meta []byte) string {
	if len(meta) == 0 {
		return ""
	}
	var m struct {
		Dollar any `json:"$correlationId"`
		Plain  any `json:"correlationId"`
	}
	if json.Unmarshal(meta, &m) != nil {
		return ""
	}
	for _, v := range []any{m.Dollar, m.Plain} {
		switch v := v.(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return ""
}

func (g *group) noteHandled() {
	g.acksSince++
	if g.dirtySince.IsZero() {
		g.dirtySince = g.m.cfg.Now()
	}
}

// finish marks an event handled (acked, skipped or durably parked).
func (g *group) finish(e *entry) {
	e.done = true
	if e.rec != nil {
		g.replayHandled(e.rec)
	} else {
		g.advance()
	}
	g.noteHandled()
}

func (g *group) replayHandled(r *parkRec) {
	r.done = true
	if g.set.ordered {
		if q := g.quar[r.stream]; q != nil {
			q.inLine--
			g.liftIfClear(r.stream)
		}
	}
	g.advanceCursor()
}

// fail handles an event that was not handled: retried, or parked past the retry count.
func (g *group) fail(e *entry, why string) {
	if e.retry >= g.set.maxRetry {
		g.park(e, fmt.Sprintf("%s; max retry count %d reached", why, g.set.maxRetry), false)
		return
	}
	e.retry++
	g.requeue(e)
}

func (g *group) requeue(e *entry) {
	if e.rec != nil {
		i, _ := slices.BinarySearchFunc(g.replayQ, e, func(a, b *entry) int { return cmp.Compare(a.rec.rev, b.rec.rev) })
		g.replayQ = slices.Insert(g.replayQ, i, e)
		return
	}
	i, _ := slices.BinarySearchFunc(g.retryQ, e, func(a, b *entry) int { return cmp.Compare(a.pos, b.pos) })
	g.retryQ = slices.Insert(g.retryQ, i, e)
}

func (g *group) park(e *entry, reason string, held bool) {
	if g.set.ordered {
		q := g.quarOf(e.ev.Stream)
		q.parked = append(q.parked, parkedRef{e.pos, e.ev.ID})
	}
	g.pending = append(g.pending, pendingPark{e, reason, held})
}

// flushParks writes the parked events in one append; only then are they handled. It
// reports whether anything was parked.
func (g *group) flushParks() bool {
	if len(g.pending) == 0 {
		return false
	}
	pend := g.pending
	g.pending = nil
	evs := make([]verity.EventData, len(pend))
	for i, p := range pend {
		evs[i] = verity.EventData{Type: EventTypeParked, Data: mustJSON(parkedRecord{
			Incarnation: g.def.Incarnation, Stream: p.e.ev.Stream, Revision: p.e.ev.Revision,
			Position: p.e.ev.Position, EventID: p.e.ev.ID, EventType: p.e.ev.Type,
			Reason: p.reason, RetryCount: p.e.retry, Held: p.held,
		})}
	}
	res, err := g.m.store.Append(g.ctx, g.parkedStream, verity.Any(), evs...)
	if err != nil {
		g.log.Error("cannot park events; they stay in line", "events", len(pend), "err", err)
		for _, p := range pend {
			if q := g.quar[p.e.ev.Stream]; q != nil {
				q.removeParked(p.e.pos, p.e.ev.ID)
				g.liftIfClear(p.e.ev.Stream)
			}
			g.requeue(p.e)
		}
		return false
	}
	first := res.Revision + 1 - uint64(len(pend))
	for i, p := range pend {
		e := p.e
		r := &parkRec{rev: first + uint64(i), stream: e.ev.Stream, pos: e.pos, revision: e.ev.Revision, position: e.ev.Position, id: e.ev.ID}
		g.parked = append(g.parked, r)
		g.finish(e)
	}
	return true
}

// dispatch gives waiting events to consumers with room: replayed parked events first,
// then retries, then new events.
func (g *group) dispatch() {
	if !g.loaded || len(g.consumers) == 0 {
		return
	}
	g.fillReplay()
	var blocked map[string]bool
	if g.set.strategy == verity.Pinned || g.set.strategy == verity.PinnedByCorrelation {
		blocked = map[string]bool{}
	}
	g.replayQ = g.scan(g.replayQ, blocked)
	g.retryQ = g.scan(g.retryQ, blocked)
	g.newQ = g.scan(g.newQ, blocked)
}

func (g *group) anyRoom() bool {
	for _, c := range g.consumers {
		if c.room() {
			return true
		}
	}
	return false
}

func (g *group) scan(q []*entry, blocked map[string]bool) []*entry {
	kept := q[:0]
	for i, e := range q {
		if !g.anyRoom() {
			kept = append(kept, q[i:]...)
			break
		}
		if g.set.ordered {
			if qs := g.quar[e.ev.Stream]; qs != nil {
				if id, ok := qs.firstParkedBefore(e.pos); ok {
					g.park(e, "held behind parked event "+id.String(), true)
					continue
				}
				if (e.rec == nil && qs.inLine > 0) || (e.rec != nil && qs.replayInFlight > 0) {
					kept = append(kept, e)
					continue
				}
			}
		}
		if blocked != nil && blocked[e.key] {
			kept = append(kept, e)
			continue
		}
		c := g.pick(e)
		if c == nil {
			kept = append(kept, e)
			if blocked == nil {
				kept = append(kept, q[i+1:]...)
				break
			}
			blocked[e.key] = true
			continue
		}
		g.deliver(c, e)
	}
	clear(q[len(kept):])
	return kept
}

func (g *group) pick(e *entry) *consumer {
	switch g.set.strategy {
	case verity.RoundRobin:
		n := len(g.consumers)
		for i := range n {
			if c := g.consumers[(g.rr+i)%n]; c.room() {
				g.rr = (g.rr + i + 1) % n
				return c
			}
		}
		return nil
	case verity.DispatchToSingle:
		for _, c := range g.consumers {
			if c.room() {
				return c
			}
		}
		return nil
	}
	if c := g.pins[e.key]; c != nil {
		if c.room() {
			return c
		}
		return nil
	}
	var best *consumer
	for _, c := range g.consumers {
		if c.room() && (best == nil || c.pins < best.pins) {
			best = c
		}
	}
	if best != nil {
		if len(g.pins) >= g.m.cfg.MaxPins {
			g.prunePins()
		}
		g.pins[e.key] = best
		best.pins++
	}
	return best
}

// prunePins forgets the pins of keys with nothing in flight: their next event may go to
// any consumer without breaking their order.
func (g *group) prunePins() {
	live := map[string]bool{}
	for _, c := range g.consumers {
		for _, e := range c.inflight {
			live[e.key] = true
		}
	}
	for k, c := range g.pins {
		if !live[k] {
			delete(g.pins, k)
			c.pins--
		}
	}
}

func (g *group) deliver(c *consumer, e *entry) {
	e.owner = c
	if g.set.timeout > 0 {
		e.deadline = g.m.cfg.Now().Add(g.set.timeout)
	}
	c.inflight[e.ev.ID] = e
	c.delivered++
	g.delivered++
	if e.rec != nil && g.set.ordered {
		g.quarOf(e.ev.Stream).replayInFlight++
	}
	c.push(delivery{msg: verity.GroupMessage{Event: e.ev, RetryCount: e.retry}, e: e})
}

func (g *group) removeFlight(e *entry) {
	c := e.owner
	if c == nil {
		return
	}
	delete(c.inflight, e.ev.ID)
	c.unqueue(e)
	e.owner = nil
	if e.rec != nil && g.set.ordered {
		if q := g.quar[e.ev.Stream]; q != nil {
			q.replayInFlight--
		}
	}
}

// fillReplay reads parked events back from their source to deliver them again.
func (g *group) fillReplay() {
	for len(g.replayQ) < max(g.set.batch, 1) && len(g.replayPending) > 0 {
		r := g.replayPending[0]
		ev, found, err := g.readBack(r)
		if err != nil {
			g.log.Error("cannot read a parked event back; will retry", "stream", r.stream, "event", r.id, "err", err)
			return
		}
		g.replayPending = g.replayPending[1:]
		if !found {
			g.log.Warn("parked event no longer readable; dropping it from the replay", "stream", r.stream, "event", r.id)
			g.replayHandled(r)
			g.noteHandled()
			continue
		}
		g.replayQ = append(g.replayQ, &entry{ev: ev, pos: r.pos, key: g.keyOf(ev), rec: r})
	}
}

func (g *group) readBack(r *parkRec) (verity.RecordedEvent, bool, error) {
	ctx := g.ctx
	var evs []verity.RecordedEvent
	var err error
	if g.logGroup {
		evs, err = g.m.store.ReadAll(ctx, verity.ReadAllOptions{From: r.position, Limit: 1})
	} else {
		evs, err = g.m.store.ReadStream(ctx, r.stream, verity.ReadStreamOptions{From: r.revision, Limit: 1})
	}
	if errors.Is(err, verity.ErrNotFound) || errors.Is(err, verity.ErrDeleted) {
		return verity.RecordedEvent{}, false, nil
	}
	if err != nil {
		return verity.RecordedEvent{}, false, err
	}
	if len(evs) == 0 || evs[0].ID != r.id || evs[0].Stream != r.stream {
		return verity.RecordedEvent{}, false, nil
	}
	return evs[0], true, nil
}

// minMarkedWait is the shortest wait before a move made by markers alone is written, so a
// CheckpointAfter of zero does not write a checkpoint per marker.
const minMarkedWait = 100 * time.Millisecond

// maybeCheckpoint writes the checkpoint when acks reached CheckpointUpperBound, when they
// reached CheckpointLowerBound and CheckpointAfter passed since the first of them, or when
// CheckpointAfter passed since markers moved it (see noteMarked).
func (g *group) maybeCheckpoint(now time.Time) {
	if !g.dirty() {
		return
	}
	acked := g.acksSince >= g.set.cpUpper || (g.acksSince >= g.set.cpLower && !g.dirtySince.IsZero() && now.Sub(g.dirtySince) >= g.set.cpAfter)
	marked := !g.markSince.IsZero() && now.Sub(g.markSince) >= max(g.set.cpAfter, minMarkedWait)
	if marked && !acked && g.passedOnlyOwn() {
		// Another group's write noted after this group passed it: nothing to write.
		g.markSince = time.Time{}
		return
	}
	if !acked && !marked {
		return
	}
	if err := g.writeCheckpoint(); err != nil {
		g.log.Error("cannot write checkpoint", "err", err)
		// Try again a period later rather than at every step.
		if !g.dirtySince.IsZero() {
			g.dirtySince = now
		}
		if !g.markSince.IsZero() {
			g.markSince = now
		}
	}
}

func (g *group) dirty() bool {
	return g.cp != g.wcp || g.cpOK != g.wcpOK || g.cursor != g.wcursor
}

func (g *group) writeCheckpoint() error {
	if !g.loaded || !g.dirty() {
		return nil
	}
	ctx := g.ctx
	st := g.m.store
	if !g.metaSet {
		meta := verity.StreamMetadata{}
		res, err := st.GetStreamMetadata(ctx, g.cpStream)
		if err == nil {
			meta = res.Metadata
		} else if !errors.Is(err, verity.ErrNotFound) {
			return err
		}
		switch {
		case meta.IsSoftDeleted():
			// A deleted group's stream: the append below undeletes it; set the limit next time.
		case meta.MaxCount != checkpointStreamMaxCnt:
			meta.MaxCount = checkpointStreamMaxCnt
			res, err := st.SetStreamMetadata(ctx, g.cpStream, verity.Any(), meta)
			if err != nil {
				return err
			}
			g.m.noteOwn(res.Position)
			g.metaSet = true
		default:
			g.metaSet = true
		}
	}
	rec := checkpointRecord{Incarnation: g.def.Incarnation, Checkpointed: g.cpOK, Checkpoint: g.cp, ParkedCursor: g.cursor}
	res, err := st.Append(ctx, g.cpStream, verity.Any(), verity.EventData{Type: EventTypeCheckpoint, Data: mustJSON(rec)})
	if err != nil {
		return err
	}
	g.m.noteOwn(res.Position)
	g.wcp, g.wcpOK, g.wcursor = g.cp, g.cpOK, g.cursor
	g.acksSince, g.dirtySince, g.markSince = 0, time.Time{}, time.Time{}
	return nil
}

func (g *group) shutdown(req stopReq) {
	// Acks, nacks and leaves already in line came before the stop, and GroupConsumer.Ack
	// promises that the call which stops the group sees them: apply them first, so the
	// final checkpoint has them. Other ops are left: their callers see the group stopped
	// and ask its successor.
	for drained := false; !drained; {
		select {
		case o := <-g.ops:
			if o.kind == opAck || o.kind == opNack || o.kind == opLeave {
				g.handle(o)
			}
		default:
			drained = true
		}
	}
	g.stopReader()
	if req.checkpoint && g.loaded {
		g.flushParks()
		if err := g.writeCheckpoint(); err != nil {
			g.log.Error("cannot write the final checkpoint", "err", err)
		}
	}
	for _, c := range g.consumers {
		c.disconnect(req.err)
	}
	g.consumers = nil
}

func (g *group) handle(o op) {
	switch o.kind {
	case opAck:
		c := o.c
		for _, id := range o.ids {
			if e := c.inflight[id]; e != nil {
				g.removeFlight(e)
				c.acked++
				g.acked++
				g.finish(e)
			}
		}
	case opNack:
		g.nack(o)
	case opLeave:
		g.removeConsumer(o.c, nil)
	case opJoin:
		o.reply <- g.join(o.join)
	case opInfo:
		o.reply <- reply{info: g.info()}
	case opReplay:
		o.reply <- reply{err: g.replay(o.limit)}
	}
}

func (g *group) nack(o op) {
	c := o.c
	if o.action == verity.NackStop {
		for _, id := range o.ids {
			if c.inflight[id] != nil {
				c.nacked++
				g.nacked++
			}
		}
		g.removeConsumer(c, verity.Errorf(verity.Conflict, "recv", "consumer %s of group %q stopped by a nack", c.id, g.def.Group))
		return
	}
	for _, id := range o.ids {
		e := c.inflight[id]
		if e == nil {
			continue
		}
		g.removeFlight(e)
		c.nacked++
		g.nacked++
		switch o.action {
		case verity.NackPark:
			g.park(e, o.reason, false)
		case verity.NackRetry:
			g.fail(e, "nacked: "+o.reason)
		case verity.NackSkip:
			g.finish(e)
		}
	}
}

func (g *group) join(opts verity.JoinOptions) reply {
	if g.set.maxConsumer > 0 && len(g.consumers) >= g.set.maxConsumer {
		return reply{err: verity.Errorf(verity.ResourceExhausted, "join", "group %q on %q has its maximum of %d consumers", g.def.Group, g.def.Stream, g.set.maxConsumer)}
	}
	g.nextID++
	c := &consumer{
		g: g, id: fmt.Sprintf("c%d", g.nextID), name: opts.Name, max: opts.MaxInFlight,
		connected: g.m.cfg.Now(), inflight: map[uuid.UUID]*entry{},
		notify: make(chan struct{}, 1), gone: make(chan struct{}),
	}
	if c.max == 0 {
		c.max = verity.DefaultMaxInFlight
	}
	g.consumers = append(g.consumers, c)
	return reply{c: c}
}

// removeConsumer disconnects c; its events in flight go back in line, each counting a
// retry (a consumer that crashes on a poison event must not loop forever).
func (g *group) removeConsumer(c *consumer, err error) {
	i := slices.Index(g.consumers, c)
	if i < 0 {
		return
	}
	g.consumers = slices.Delete(g.consumers, i, i+1)
	if g.rr >= len(g.consumers) {
		g.rr = 0
	}
	if err != nil {
		c.disconnect(err)
	}
	back := make([]*entry, 0, len(c.inflight))
	for _, e := range c.inflight {
		back = append(back, e)
	}
	slices.SortFunc(back, func(a, b *entry) int { return cmp.Compare(a.pos, b.pos) })
	for _, e := range back {
		g.removeFlight(e)
		g.fail(e, "consumer "+c.id+" left")
	}
	for k, pc := range g.pins {
		if pc == c {
			delete(g.pins, k)
		}
	}
}

func (g *group) replay(limit int) error {
	n := len(g.parked)
	if limit > 0 && limit < n {
		n = limit
	}
	if n == 0 {
		return nil
	}
	upTo := g.parked[n-1].rev
	_, err := g.m.store.Append(g.ctx, g.parkedStream, verity.Any(), verity.EventData{
		Type: EventTypeReplayParked, Data: mustJSON(replayRecord{Incarnation: g.def.Incarnation, UpTo: upTo}),
	})
	if err != nil {
		return err
	}
	g.upTo = int64(upTo)
	for _, r := range g.parked[:n] {
		g.line = append(g.line, r)
		g.replayPending = append(g.replayPending, r)
		if g.set.ordered {
			q := g.quarOf(r.stream)
			q.removeParked(r.pos, r.id)
			q.inLine++
		}
	}
	g.parked = slices.Delete(g.parked, 0, n)
	return nil
}

func (g *group) info() verity.GroupInfo {
	inf := verity.GroupInfo{
		Stream: g.def.Stream, Group: g.def.Group, Filter: g.def.Filter,
		Settings:     withDefaults(g.def.Settings),
		Checkpointed: g.wcpOK, Checkpoint: g.wcp, LastKnown: g.lastKnown,
		Waiting:   len(g.newQ) + len(g.retryQ) + len(g.replayQ) + len(g.replayPending),
		Parked:    len(g.parked) + len(g.pending),
		Delivered: g.delivered, Acked: g.acked, Nacked: g.nacked, TimedOut: g.timedOut,
	}
	switch {
	case len(g.consumers) == 0:
		inf.Status = verity.GroupIdle
	case g.caughtUp:
		inf.Status = verity.GroupLive
	default:
		inf.Status = verity.GroupCatchingUp
	}
	if g.seen {
		switch {
		case g.wcpOK:
			cp := g.wcp
			if g.cpOK && g.cp > cp && g.passedOnlyOwn() {
				// Past the written checkpoint lie only checkpoints this Manager wrote
				// (its own last write among them): nothing of the group's is waiting, so
				// an idle group shows no lag.
				cp = g.cp
			}
			if g.lastKnown > cp {
				inf.Lag = g.lastKnown - cp
			}
		case g.lastKnown+1 >= g.startPos():
			inf.Lag = g.lastKnown + 1 - g.startPos()
		}
	}
	for _, c := range g.consumers {
		inf.InFlight += len(c.inflight)
		inf.Consumers = append(inf.Consumers, verity.ConsumerInfo{
			ID: c.id, Name: c.name, MaxInFlight: c.max, InFlight: len(c.inflight),
			Delivered: c.delivered, Acked: c.acked, Nacked: c.nacked, Connected: c.connected,
		})
	}
	return inf
}

func (g *group) startPos() uint64 {
	if g.logGroup {
		return max(g.def.Settings.From, 1)
	}
	return g.def.Settings.From
}
