package kurrentdb

import (
	"context"
	"math"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	streamsv1 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"

	"github.com/verity-dev/verity"
)

// readPlan is a v1 read request, checked.
type readPlan struct {
	stream    string // "" for $all
	backwards bool
	fromEnd   bool
	// from is the first revision (stream) or position ($all) to read; with fromStart unset
	// and fromEnd unset it was given by the client.
	from      uint64
	fromStart bool
	count     uint64
	subscribe bool
	filter    verity.Filter
	// checkpointEvery is, for a filtered subscription, how many events may pass without a
	// checkpoint.
	checkpointEvery int
	stringIDs       bool
}

// defaultSearchWindow is KurrentDB's filter window when a client sends none; checkpoints
// come every window × multiplier events considered.
const defaultSearchWindow = 32

// parseRead checks a v1 read request.
func parseRead(req *streamsv1.ReadReq) (readPlan, error) {
	const op = "read"
	o := req.GetOptions()
	if o == nil {
		return readPlan{}, invalid(op, "the read request carries no options")
	}
	var p readPlan
	p.stringIDs = o.GetUuidOption().GetString_() != nil
	p.backwards = o.GetReadDirection() == streamsv1.ReadReq_Options_Backwards
	switch d := o.GetReadDirection(); d {
	case streamsv1.ReadReq_Options_Forwards, streamsv1.ReadReq_Options_Backwards:
	default:
		return readPlan{}, invalid(op, "read direction %d is neither forwards (0) nor backwards (1)", d)
	}
	switch c := o.GetCountOption().(type) {
	case *streamsv1.ReadReq_Options_Count:
		p.count = c.Count
	case *streamsv1.ReadReq_Options_Subscription:
		p.subscribe = true
		if p.backwards {
			return readPlan{}, invalid(op, "a subscription reads forwards only")
		}
	default:
		return readPlan{}, invalid(op, "the read request gives neither a count nor the subscription option")
	}
	switch so := o.GetStreamOption().(type) {
	case *streamsv1.ReadReq_Options_Stream:
		name, err := streamName(op, so.Stream.GetStreamIdentifier())
		if err != nil {
			return readPlan{}, err
		}
		if name == verity.AllStream {
			return readPlan{}, invalid(op, "read $all with the all option, not as a stream")
		}
		p.stream = name
		switch r := so.Stream.GetRevisionOption().(type) {
		case *streamsv1.ReadReq_Options_StreamOptions_Revision:
			p.from = r.Revision
		case *streamsv1.ReadReq_Options_StreamOptions_Start:
			p.fromStart = true
		case *streamsv1.ReadReq_Options_StreamOptions_End:
			p.fromEnd = true
		default:
			return readPlan{}, invalid(op, "stream %q: the read gives no revision, start or end", name)
		}
		if o.GetFilter() != nil {
			return readPlan{}, invalid(op, "stream %q: filters apply to $all only", name)
		}
	case *streamsv1.ReadReq_Options_All:
		switch a := so.All.GetAllOption().(type) {
		case *streamsv1.ReadReq_Options_AllOptions_Position:
			p.from = a.Position.GetCommitPosition()
			// Clients send the largest position to mean the end.
			if p.from == math.MaxUint64 || int64(p.from) == -1 {
				p.fromEnd = true
			}
		case *streamsv1.ReadReq_Options_AllOptions_Start:
			p.fromStart = true
		case *streamsv1.ReadReq_Options_AllOptions_End:
			p.fromEnd = true
		default:
			return readPlan{}, invalid(op, "the read of $all gives no position, start or end")
		}
		if f := o.GetFilter(); f != nil {
			if err := parseFilter(f, &p); err != nil {
				return readPlan{}, err
			}
		}
	default:
		return readPlan{}, invalid(op, "the read request names neither a stream nor $all")
	}
	return p, nil
}

// parseFilter maps a KurrentDB filter onto Verity's: prefixes and regular expressions on
// the stream name or the event type.
func parseFilter(f *streamsv1.ReadReq_Options_FilterOptions, p *readPlan) error {
	const op = "read"
	var expr *streamsv1.ReadReq_Options_FilterOptions_Expression
	onType := false
	switch v := f.GetFilter().(type) {
	case *streamsv1.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = v.StreamIdentifier
	case *streamsv1.ReadReq_Options_FilterOptions_EventType:
		expr, onType = v.EventType, true
	default:
		return invalid(op, "the filter applies to neither stream names nor event types")
	}
	if expr.GetRegex() == "" && len(expr.GetPrefix()) == 0 {
		return invalid(op, "the filter gives neither a regular expression nor prefixes")
	}
	for _, pre := range expr.GetPrefix() {
		if pre == "" {
			return invalid(op, "the filter has an empty prefix, which would match everything")
		}
	}
	if onType {
		p.filter.EventTypePrefixes = expr.GetPrefix()
		p.filter.EventTypeRegexp = expr.GetRegex()
	} else {
		p.filter.StreamPrefixes = expr.GetPrefix()
		p.filter.StreamRegexp = expr.GetRegex()
	}
	if _, err := p.filter.Compile(); err != nil {
		return err
	}
	window := uint64(defaultSearchWindow)
	if w, ok := f.GetWindow().(*streamsv1.ReadReq_Options_FilterOptions_Max); ok && w.Max > 0 {
		window = uint64(w.Max)
	}
	every := window * max(uint64(f.GetCheckpointIntervalMultiplier()), 1)
	p.checkpointEvery = int(min(every, math.MaxInt32))
	return nil
}

// Read implements the v1 read: of a stream or of $all, bounded by a count, or a
// subscription. Events go out as they are read from the store, a batch at a time, so a
// read never holds more than one batch and a slow reader holds the server back only by
// gRPC's flow control.
func (x *streamsServer) Read(req *streamsv1.ReadReq, stream streamsv1.Streams_ReadServer) error {
	const op = "read"
	ctx := stream.Context()
	st, err := x.s.storeFor(ctx)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	p, err := parseRead(req)
	if err != nil {
		return x.s.rpcError(ctx, op, err)
	}
	switch {
	case p.subscribe:
		err = x.s.subscribe(ctx, st, p, stream.Send)
	case p.stream == "":
		err = x.s.readAll(ctx, st, p, stream.Send)
	default:
		err = x.s.readStream(ctx, st, p, stream.Send)
	}
	return x.s.rpcError(ctx, op, err)
}

type sendFunc func(*streamsv1.ReadResp) error

func streamNotFound(name string) *streamsv1.ReadResp {
	return &streamsv1.ReadResp{Content: &streamsv1.ReadResp_StreamNotFound_{
		StreamNotFound: &streamsv1.ReadResp_StreamNotFound{StreamIdentifier: streamIdentifier(name)},
	}}
}

func (s *Service) readStream(ctx context.Context, st verity.Store, p readPlan, send sendFunc) error {
	if of, ok := verity.IsMetadataStream(p.stream); ok {
		return s.readMetadataStream(ctx, st, of, p, send)
	}
	opts := verity.ReadStreamOptions{From: p.from, FromEnd: p.fromEnd}
	if p.backwards {
		opts.Direction = verity.Backwards
	}
	if p.fromStart {
		opts.From = 0
		if p.backwards {
			// Backwards from the start is the first event alone.
			p.count = min(p.count, 1)
		}
	}
	for remaining, first := p.count, true; remaining > 0; first = false {
		opts.Limit = int(min(remaining, uint64(s.opts.MaxReadBatch)))
		evs, err := st.ReadStream(ctx, p.stream, opts)
		if verity.KindOf(err) == verity.NotFound && first {
			if hiddenByMetadata(ctx, st, p.stream) {
				return nil // KurrentDB answers an empty stream, not a missing one
			}
			return send(streamNotFound(p.stream))
		}
		if err != nil {
			if verity.KindOf(err) == verity.NotFound {
				return nil // deleted while being read: what was sent stands
			}
			return err
		}
		for _, ev := range evs {
			if err := send(recordedToProto(ev, p.stringIDs)); err != nil {
				return err
			}
		}
		remaining -= uint64(len(evs))
		if len(evs) < opts.Limit {
			return nil
		}
		last := evs[len(evs)-1].Revision
		if p.backwards {
			if last == 0 {
				return nil
			}
			opts.From, opts.FromEnd = last-1, false
		} else {
			opts.From = last + 1
		}
	}
	return nil
}

// hiddenByMetadata reports whether a stream that reads as not found may rather have all its
// events hidden by its max age or truncate before, which KurrentDB reads as an empty stream.
func hiddenByMetadata(ctx context.Context, st verity.Store, stream string) bool {
	res, err := st.GetStreamMetadata(ctx, stream)
	if err != nil {
		return false
	}
	m := res.Metadata
	return !m.IsSoftDeleted() && (m.MaxAge > 0 || m.TruncateBefore != nil)
}

// readMetadataStream answers a read of "$$<of>" from the stream's metadata.
func (s *Service) readMetadataStream(ctx context.Context, st verity.Store, of string, p readPlan, send sendFunc) error {
	ev, err := readMetadataEvent(ctx, st, of, s.opts.Now())
	switch {
	case verity.KindOf(err) == verity.NotFound:
		return send(streamNotFound(p.stream))
	case err != nil:
		return err
	}
	// The one visible event is at ev.Revision: say whether the requested range covers it.
	var covered bool
	switch {
	case p.count == 0:
	case p.fromEnd:
		covered = p.backwards
	case p.fromStart:
		covered = !p.backwards || ev.Revision == 0
	case p.backwards:
		covered = p.from >= ev.Revision
	default:
		covered = p.from <= ev.Revision
	}
	if !covered {
		return nil
	}
	return send(recordedToProto(ev, p.stringIDs))
}

func (s *Service) readAll(ctx context.Context, st verity.Store, p readPlan, send sendFunc) error {
	opts := verity.ReadAllOptions{From: p.from, FromEnd: p.fromEnd, Filter: p.filter}
	if p.backwards {
		opts.Direction = verity.Backwards
		if p.fromStart || (!p.fromEnd && p.from == 0) {
			return nil // nothing lies before the start
		}
	} else if p.fromEnd {
		return nil // nothing lies after the end yet
	}
	if p.fromStart {
		opts.From = 0
	}
	for remaining := p.count; remaining > 0; {
		opts.Limit = int(min(remaining, uint64(s.opts.MaxReadBatch)))
		evs, err := st.ReadAll(ctx, opts)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil // the end of the log
		}
		for _, ev := range evs {
			if err := send(recordedToProto(ev, p.stringIDs)); err != nil {
				return err
			}
		}
		remaining -= uint64(len(evs))
		last := evs[len(evs)-1].Position
		if p.backwards {
			if last <= 1 {
				return nil
			}
			opts.From, opts.FromEnd = last-1, false
		} else {
			opts.From = last + 1
		}
	}
	return nil
}

// subscribe serves a subscription: the confirmation, the history, caught-up, then live
// events (and checkpoints, when filtered) until the client goes away. A revision or
// position given by the client is where it got to: the subscription starts after it.
func (s *Service) subscribe(ctx context.Context, st verity.Store, p readPlan, send sendFunc) error {
	release, err := s.acquireSubscription(ctx)
	if err != nil {
		return err
	}
	defer release()
	opts := verity.SubscribeOptions{Stream: p.stream, Filter: p.filter, CheckpointEvery: p.checkpointEvery}
	switch {
	case p.fromEnd:
		opts.FromEnd = true
	case p.fromStart:
		opts.From = 0
	case p.from == math.MaxUint64:
		opts.FromEnd = true
	default:
		opts.From = p.from + 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := st.Subscribe(ctx, opts)
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := send(&streamsv1.ReadResp{Content: &streamsv1.ReadResp_Confirmation{
		Confirmation: &streamsv1.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}}); err != nil {
		return err
	}
	var lastRev *uint64
	for {
		m, err := sub.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		var msg *streamsv1.ReadResp
		switch m.Kind {
		case verity.MessageEvent:
			rev := m.Event.Revision
			lastRev = &rev
			msg = recordedToProto(m.Event, p.stringIDs)
		case verity.MessageCaughtUp:
			cu := &streamsv1.ReadResp_CaughtUp{Timestamp: timestamppb.New(s.opts.Now())}
			if p.stream != "" {
				if lastRev != nil {
					r := int64(*lastRev)
					cu.StreamRevision = &r
				}
			} else if m.Position > 0 {
				cu.Position = &streamsv1.ReadResp_Position{CommitPosition: m.Position, PreparePosition: m.Position}
			}
			msg = &streamsv1.ReadResp{Content: &streamsv1.ReadResp_CaughtUp_{CaughtUp: cu}}
		case verity.MessageCheckpoint:
			msg = &streamsv1.ReadResp{Content: &streamsv1.ReadResp_Checkpoint_{Checkpoint: &streamsv1.ReadResp_Checkpoint{
				CommitPosition: m.Position, PreparePosition: m.Position, Timestamp: timestamppb.New(s.opts.Now()),
			}}}
		default:
			continue
		}
		if err := send(msg); err != nil {
			return err
		}
	}
}
