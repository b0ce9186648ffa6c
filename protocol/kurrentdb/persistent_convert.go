package kurrentdb

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"

	"github.com/verity-dev/verity"
)

// wireSettings are the settings of a create or an update request, as KurrentDB reads them:
// every number is meant as sent, zero included.
type wireSettings struct {
	resolveLinks, extraStatistics bool
	maxRetryCount                 int32
	minCheckpoint, maxCheckpoint  int32
	maxSubscribers                int32
	liveBuffer, readBatch, buffer int32
	strategy                      string
	messageTimeout                time.Duration
	checkpointAfter               time.Duration
}

// ticksDuration is a .NET TimeSpan in ticks (100 ns).
func ticksDuration(t int64) time.Duration { return time.Duration(t) * 100 }

func createWireSettings(s *persistent.CreateReq_Settings) wireSettings {
	w := wireSettings{
		resolveLinks: s.GetResolveLinks(), extraStatistics: s.GetExtraStatistics(),
		maxRetryCount: s.GetMaxRetryCount(), minCheckpoint: s.GetMinCheckpointCount(),
		maxCheckpoint: s.GetMaxCheckpointCount(), maxSubscribers: s.GetMaxSubscriberCount(),
		liveBuffer: s.GetLiveBufferSize(), readBatch: s.GetReadBatchSize(), buffer: s.GetHistoryBufferSize(),
		strategy: s.GetConsumerStrategy(),
	}
	if w.strategy == "" {
		// Clients before 21.10 send the deprecated enum only; its zero is DispatchToSingle.
		w.strategy = s.GetNamedConsumerStrategy().String()
	}
	switch m := s.GetMessageTimeout().(type) {
	case *persistent.CreateReq_Settings_MessageTimeoutMs:
		w.messageTimeout = time.Duration(m.MessageTimeoutMs) * time.Millisecond
	case *persistent.CreateReq_Settings_MessageTimeoutTicks:
		w.messageTimeout = ticksDuration(m.MessageTimeoutTicks)
	}
	switch c := s.GetCheckpointAfter().(type) {
	case *persistent.CreateReq_Settings_CheckpointAfterMs:
		w.checkpointAfter = time.Duration(c.CheckpointAfterMs) * time.Millisecond
	case *persistent.CreateReq_Settings_CheckpointAfterTicks:
		w.checkpointAfter = ticksDuration(c.CheckpointAfterTicks)
	}
	return w
}

func updateWireSettings(s *persistent.UpdateReq_Settings) wireSettings {
	w := wireSettings{
		resolveLinks: s.GetResolveLinks(), extraStatistics: s.GetExtraStatistics(),
		maxRetryCount: s.GetMaxRetryCount(), minCheckpoint: s.GetMinCheckpointCount(),
		maxCheckpoint: s.GetMaxCheckpointCount(), maxSubscribers: s.GetMaxSubscriberCount(),
		liveBuffer: s.GetLiveBufferSize(), readBatch: s.GetReadBatchSize(), buffer: s.GetHistoryBufferSize(),
		strategy: s.GetNamedConsumerStrategy().String(), // an update carries the enum alone
	}
	switch m := s.GetMessageTimeout().(type) {
	case *persistent.UpdateReq_Settings_MessageTimeoutMs:
		w.messageTimeout = time.Duration(m.MessageTimeoutMs) * time.Millisecond
	case *persistent.UpdateReq_Settings_MessageTimeoutTicks:
		w.messageTimeout = ticksDuration(m.MessageTimeoutTicks)
	}
	switch c := s.GetCheckpointAfter().(type) {
	case *persistent.UpdateReq_Settings_CheckpointAfterMs:
		w.checkpointAfter = time.Duration(c.CheckpointAfterMs) * time.Millisecond
	case *persistent.UpdateReq_Settings_CheckpointAfterTicks:
		w.checkpointAfter = ticksDuration(c.CheckpointAfterTicks)
	}
	return w
}

// groupSettings maps KurrentDB's settings onto Verity's. Where KurrentDB gives zero a
// meaning of its own, Verity asks for it with a negative value: a message timeout of 0 never
// times out, a max retry count of 0 parks at the first failure, a min checkpoint count of 0
// checkpoints after any ack. A max checkpoint count or checkpoint interval of 0 (checkpoint
// at once) becomes the least Verity knows: 1 event, 1 ms. A negative number is Invalid, named.
func (w wireSettings) groupSettings(op string) (verity.GroupSettings, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_retry_count", int64(w.maxRetryCount)},
		{"min_checkpoint_count", int64(w.minCheckpoint)},
		{"max_checkpoint_count", int64(w.maxCheckpoint)},
		{"max_subscriber_count", int64(w.maxSubscribers)},
		{"live_buffer_size", int64(w.liveBuffer)},
		{"read_batch_size", int64(w.readBatch)},
		{"history_buffer_size", int64(w.buffer)},
		{"message_timeout", int64(w.messageTimeout)},
		{"checkpoint_after", int64(w.checkpointAfter)},
	} {
		if f.v < 0 {
			return verity.GroupSettings{}, invalid(op, "setting %s is %d; it may not be negative", f.name, f.v)
		}
	}
	strategy, err := verity.ParseConsumerStrategy(w.strategy)
	if err != nil {
		return verity.GroupSettings{}, invalid(op, "consumer strategy %q is not RoundRobin, DispatchToSingle, Pinned or PinnedByCorrelation", w.strategy)
	}
	gs := verity.GroupSettings{
		ResolveLinks:         w.resolveLinks,
		ExtraStatistics:      w.extraStatistics,
		Strategy:             strategy,
		MessageTimeout:       w.messageTimeout,
		MaxRetryCount:        int(w.maxRetryCount),
		LiveBufferSize:       int(w.liveBuffer),
		ReadBatchSize:        int(w.readBatch),
		HistoryBufferSize:    int(w.buffer),
		CheckpointAfter:      w.checkpointAfter,
		CheckpointLowerBound: int(w.minCheckpoint),
		CheckpointUpperBound: int(w.maxCheckpoint),
		MaxConsumers:         int(w.maxSubscribers),
	}
	if gs.MessageTimeout == 0 {
		gs.MessageTimeout = -1
	}
	if gs.MaxRetryCount == 0 {
		gs.MaxRetryCount = -1
	}
	if gs.CheckpointLowerBound == 0 {
		gs.CheckpointLowerBound = -1
	}
	if gs.CheckpointUpperBound == 0 {
		gs.CheckpointUpperBound = 1
	}
	if gs.CheckpointAfter == 0 {
		gs.CheckpointAfter = time.Millisecond
	}
	return gs, nil
}

// clampInt32 fits a count into the wire's int32.
func clampInt32[T int | int64 | uint64](v T) int32 {
	switch {
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < 0:
		return 0
	}
	return int32(v)
}

// clampInt64 fits a counter into the wire's int64.
func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// msInt32 is a duration in whole milliseconds, 0 for a negative one ("none").
func msInt32(d time.Duration) int32 {
	if d < 0 {
		return 0
	}
	return clampInt32(d.Milliseconds())
}

// isLogGroup reports whether a group's source is the log.
func isLogGroup(stream string) bool { return stream == "" || stream == verity.AllStream }

// allPositionString is a log position as KurrentDB prints one: commit and prepare.
func allPositionString(p int64) string { return fmt.Sprintf("C:%d/P:%d", p, p) }

// subscriptionInfo describes a group as KurrentDB does.
func subscriptionInfo(g verity.GroupInfo) *persistent.SubscriptionInfo {
	st := g.Settings
	log := isLogGroup(g.Stream)
	source := g.Stream
	if log {
		source = verity.AllStream
	}
	info := &persistent.SubscriptionInfo{
		EventSource:                 source,
		GroupName:                   g.Group,
		Status:                      string(g.Status),
		TotalItems:                  clampInt64(g.Delivered),
		ResolveLinkTos:              st.ResolveLinks,
		MessageTimeoutMilliseconds:  msInt32(st.MessageTimeout),
		ExtraStatistics:             st.ExtraStatistics,
		MaxRetryCount:               clampInt32(st.MaxRetryCount),
		LiveBufferSize:              clampInt32(st.LiveBufferSize),
		BufferSize:                  clampInt32(st.HistoryBufferSize),
		ReadBatchSize:               clampInt32(st.ReadBatchSize),
		CheckPointAfterMilliseconds: msInt32(st.CheckpointAfter),
		MinCheckPointCount:          clampInt32(st.CheckpointLowerBound),
		MaxCheckPointCount:          clampInt32(st.CheckpointUpperBound),
		NamedConsumerStrategy:       st.Strategy.String(),
		MaxSubscriberCount:          clampInt32(st.MaxConsumers),
		ParkedMessageCount:          int64(g.Parked),
		TotalInFlightMessages:       clampInt32(g.InFlight),
		OutstandingMessagesCount:    clampInt32(g.InFlight),
		RetryBufferCount:            clampInt32(g.Waiting),
	}
	switch {
	case st.FromEnd && log:
		info.StartFrom = allPositionString(-1)
	case st.FromEnd:
		info.StartFrom = "-1"
	case log:
		info.StartFrom = allPositionString(int64(min(st.From, math.MaxInt64)))
	default:
		info.StartFrom = strconv.FormatUint(st.From, 10)
	}
	point := func(v uint64) string {
		if log {
			return allPositionString(int64(min(v, math.MaxInt64)))
		}
		return strconv.FormatUint(v, 10)
	}
	if g.Checkpointed {
		info.LastCheckpointedEventPosition = point(g.Checkpoint)
	}
	if g.LastKnown > 0 || (!log && g.Checkpointed) {
		info.LastKnownEventPosition = point(g.LastKnown)
	}
	for _, c := range g.Consumers {
		info.Connections = append(info.Connections, &persistent.SubscriptionInfo_ConnectionInfo{
			From:             c.Name,
			Username:         c.ID,
			TotalItems:       clampInt64(c.Delivered),
			AvailableSlots:   clampInt32(c.MaxInFlight - c.InFlight),
			InFlightMessages: clampInt32(c.InFlight),
			ConnectionName:   c.Name,
		})
	}
	return info
}

// persistentEvent is an event delivered to a consumer, as the Read call sends it.
func persistentEvent(m verity.GroupMessage, stringIDs bool) *persistent.ReadResp {
	ev := m.Event
	return &persistent.ReadResp{Content: &persistent.ReadResp_Event{Event: &persistent.ReadResp_ReadEvent{
		Event: &persistent.ReadResp_ReadEvent_RecordedEvent{
			Id:               uuidToProto(ev.ID, stringIDs),
			StreamIdentifier: streamIdentifier(ev.Stream),
			StreamRevision:   ev.Revision,
			PreparePosition:  ev.Position,
			CommitPosition:   ev.Position,
			Metadata:         systemMetadata(ev),
			CustomMetadata:   ev.Metadata,
			Data:             ev.Data,
		},
		Position: &persistent.ReadResp_ReadEvent_CommitPosition{CommitPosition: ev.Position},
		Count:    &persistent.ReadResp_ReadEvent_RetryCount{RetryCount: clampInt32(m.RetryCount)},
	}}}
}

// createFilter maps the filter of a create request onto Verity's, as parseFilter does for
// reads; the window and checkpoint interval concern catch-up subscriptions only.
func createFilter(op string, f *persistent.CreateReq_AllOptions_FilterOptions) (verity.Filter, error) {
	var expr *persistent.CreateReq_AllOptions_FilterOptions_Expression
	onType := false
	switch v := f.GetFilter().(type) {
	case *persistent.CreateReq_AllOptions_FilterOptions_StreamIdentifier:
		expr = v.StreamIdentifier
	case *persistent.CreateReq_AllOptions_FilterOptions_EventType:
		expr, onType = v.EventType, true
	default:
		return verity.Filter{}, invalid(op, "the filter applies to neither stream names nor event types")
	}
	if expr.GetRegex() == "" && len(expr.GetPrefix()) == 0 {
		return verity.Filter{}, invalid(op, "the filter gives neither a regular expression nor prefixes")
	}
	for _, pre := range expr.GetPrefix() {
		if pre == "" {
			return verity.Filter{}, invalid(op, "the filter has an empty prefix, which would match everything")
		}
	}
	var filter verity.Filter
	if onType {
		filter.EventTypePrefixes, filter.EventTypeRegexp = expr.GetPrefix(), expr.GetRegex()
	} else {
		filter.StreamPrefixes, filter.StreamRegexp = expr.GetPrefix(), expr.GetRegex()
	}
	if _, err := filter.Compile(); err != nil {
		return verity.Filter{}, err
	}
	return filter, nil
}

// streamOrAll names a group's source from a request's oneof of a stream and $all.
func streamOrAll(op string, id *shared.StreamIdentifier, all *shared.Empty) (string, error) {
	if all != nil {
		return verity.AllStream, nil
	}
	if id == nil {
		return "", invalid(op, "the request names neither a stream nor $all")
	}
	return streamName(op, id)
}
