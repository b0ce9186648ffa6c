package verityv1

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The conversions of the Groups service's messages, as convert.go's: those that read a
// message check what protobuf cannot (unknown enum values, UUID lengths, durations and
// numbers out of range) and name the field and the bad value.

// StrategyToProto returns the message value of a consumer strategy.
func StrategyToProto(s verity.ConsumerStrategy) ConsumerStrategy { return ConsumerStrategy(s) }

// StrategyFromProto reads a consumer strategy.
func StrategyFromProto(s ConsumerStrategy) (verity.ConsumerStrategy, error) {
	if s < ConsumerStrategy_CONSUMER_STRATEGY_ROUND_ROBIN || s > ConsumerStrategy_CONSUMER_STRATEGY_PINNED_BY_CORRELATION {
		return 0, fmt.Errorf("consumer strategy %d is unknown (0 round robin, 1 dispatch to single, 2 pinned, 3 pinned by correlation)", int32(s))
	}
	return verity.ConsumerStrategy(s), nil
}

// QuarantineToProto returns the message value of a quarantine mode.
func QuarantineToProto(q verity.QuarantineMode) QuarantineMode { return QuarantineMode(q) }

// QuarantineFromProto reads a quarantine mode.
func QuarantineFromProto(q QuarantineMode) (verity.QuarantineMode, error) {
	if q < QuarantineMode_QUARANTINE_MODE_DEFAULT || q > QuarantineMode_QUARANTINE_MODE_OFF {
		return 0, fmt.Errorf("quarantine mode %d is unknown (0 default, 1 ordered, 2 off)", int32(q))
	}
	return verity.QuarantineMode(q), nil
}

// NackActionToProto returns the message value of a nack action.
func NackActionToProto(a verity.NackAction) NackAction { return NackAction(a) }

// NackActionFromProto reads a nack action; unspecified is an error as well.
func NackActionFromProto(a NackAction) (verity.NackAction, error) {
	if a < NackAction_NACK_ACTION_PARK || a > NackAction_NACK_ACTION_STOP {
		return 0, fmt.Errorf("nack action %d is unknown (1 park, 2 retry, 3 skip, 4 stop)", int32(a))
	}
	return verity.NackAction(a), nil
}

// durationToProto returns the message of a duration; zero (the default) is nil.
func durationToProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// durationFromProto reads a duration that may be negative; nil is zero. A duration past
// what time.Duration holds is an error, not a clamped value.
func durationFromProto(field string, p *durationpb.Duration) (time.Duration, error) {
	if p == nil {
		return 0, nil
	}
	if err := p.CheckValid(); err != nil {
		return 0, fmt.Errorf("%s: %v", field, err)
	}
	const maxSecs = math.MaxInt64 / int64(time.Second)
	if s := p.GetSeconds(); s > maxSecs-1 || s < -maxSecs+1 {
		return 0, fmt.Errorf("%s: %d seconds is out of range (±%d)", field, s, maxSecs-1)
	}
	return p.AsDuration(), nil
}

// intFromProto reads a count that must fit an int.
func intFromProto(field string, v int64) (int, error) {
	if int64(int(v)) != v {
		return 0, fmt.Errorf("%s %d is out of range", field, v)
	}
	return int(v), nil
}

// GroupSettingsToProto returns the message of group settings.
func GroupSettingsToProto(s verity.GroupSettings) *GroupSettings {
	return &GroupSettings{
		From: s.From, FromEnd: s.FromEnd, ResolveLinks: s.ResolveLinks, Strategy: StrategyToProto(s.Strategy),
		MessageTimeout: durationToProto(s.MessageTimeout), MaxRetryCount: int64(s.MaxRetryCount),
		LiveBufferSize: int64(s.LiveBufferSize), ReadBatchSize: int64(s.ReadBatchSize), HistoryBufferSize: int64(s.HistoryBufferSize),
		CheckpointAfter: durationToProto(s.CheckpointAfter), CheckpointLowerBound: int64(s.CheckpointLowerBound),
		CheckpointUpperBound: int64(s.CheckpointUpperBound), MaxConsumers: int64(s.MaxConsumers),
		ExtraStatistics: s.ExtraStatistics, Quarantine: QuarantineToProto(s.Quarantine),
	}
}

// GroupSettingsFromProto reads group settings; nil is the zero settings (every default).
// Values are checked for what the message can say and the contract cannot; whether they
// are in range is the Groups implementation's to say.
func GroupSettingsFromProto(p *GroupSettings) (verity.GroupSettings, error) {
	s := verity.GroupSettings{From: p.GetFrom(), FromEnd: p.GetFromEnd(), ResolveLinks: p.GetResolveLinks(), ExtraStatistics: p.GetExtraStatistics()}
	var err error
	if s.Strategy, err = StrategyFromProto(p.GetStrategy()); err != nil {
		return verity.GroupSettings{}, err
	}
	if s.Quarantine, err = QuarantineFromProto(p.GetQuarantine()); err != nil {
		return verity.GroupSettings{}, err
	}
	if s.MessageTimeout, err = durationFromProto("message_timeout", p.GetMessageTimeout()); err != nil {
		return verity.GroupSettings{}, err
	}
	if s.CheckpointAfter, err = durationFromProto("checkpoint_after", p.GetCheckpointAfter()); err != nil {
		return verity.GroupSettings{}, err
	}
	ints := []struct {
		field string
		v     int64
		to    *int
	}{
		{"max_retry_count", p.GetMaxRetryCount(), &s.MaxRetryCount},
		{"live_buffer_size", p.GetLiveBufferSize(), &s.LiveBufferSize},
		{"read_batch_size", p.GetReadBatchSize(), &s.ReadBatchSize},
		{"history_buffer_size", p.GetHistoryBufferSize(), &s.HistoryBufferSize},
		{"checkpoint_lower_bound", p.GetCheckpointLowerBound(), &s.CheckpointLowerBound},
		{"checkpoint_upper_bound", p.GetCheckpointUpperBound(), &s.CheckpointUpperBound},
		{"max_consumers", p.GetMaxConsumers(), &s.MaxConsumers},
	}
	for _, f := range ints {
		if *f.to, err = intFromProto(f.field, f.v); err != nil {
			return verity.GroupSettings{}, err
		}
	}
	return s, nil
}

// GroupSpecToProto returns the message of a group's spec.
func GroupSpecToProto(s verity.GroupSpec) *GroupSpec {
	return &GroupSpec{Stream: s.Stream, Group: s.Group, Filter: FilterToProto(s.Filter), Settings: GroupSettingsToProto(s.Settings)}
}

// GroupSpecFromProto reads a group's spec; names and the filter are checked by the Groups
// implementation.
func GroupSpecFromProto(p *GroupSpec) (verity.GroupSpec, error) {
	settings, err := GroupSettingsFromProto(p.GetSettings())
	if err != nil {
		return verity.GroupSpec{}, err
	}
	return verity.GroupSpec{Stream: p.GetStream(), Group: p.GetGroup(), Filter: FilterFromProto(p.GetFilter()), Settings: settings}, nil
}

// ConsumerInfoToProto returns the message describing a consumer.
func ConsumerInfoToProto(c verity.ConsumerInfo) *ConsumerInfo {
	return &ConsumerInfo{
		Id: c.ID, Name: c.Name, MaxInFlight: int64(c.MaxInFlight), InFlight: int64(c.InFlight),
		Delivered: c.Delivered, Acked: c.Acked, Nacked: c.Nacked, Connected: TimeToProto(c.Connected),
	}
}

// ConsumerInfoFromProto reads the description of a consumer.
func ConsumerInfoFromProto(p *ConsumerInfo) (verity.ConsumerInfo, error) {
	c := verity.ConsumerInfo{ID: p.GetId(), Name: p.GetName(), Delivered: p.GetDelivered(), Acked: p.GetAcked(), Nacked: p.GetNacked()}
	var err error
	if c.MaxInFlight, err = intFromProto("consumer max_in_flight", p.GetMaxInFlight()); err != nil {
		return verity.ConsumerInfo{}, err
	}
	if c.InFlight, err = intFromProto("consumer in_flight", p.GetInFlight()); err != nil {
		return verity.ConsumerInfo{}, err
	}
	if c.Connected, err = TimeFromProto("consumer connected", p.GetConnected()); err != nil {
		return verity.ConsumerInfo{}, err
	}
	return c, nil
}

// GroupInfoToProto returns the message describing a group.
func GroupInfoToProto(g verity.GroupInfo) *GroupInfo {
	p := &GroupInfo{
		Stream: g.Stream, Group: g.Group, Filter: FilterToProto(g.Filter), Settings: GroupSettingsToProto(g.Settings),
		Status: string(g.Status), Checkpointed: g.Checkpointed, Checkpoint: g.Checkpoint, LastKnown: g.LastKnown, Lag: g.Lag,
		InFlight: int64(g.InFlight), Waiting: int64(g.Waiting), Parked: int64(g.Parked),
		Delivered: g.Delivered, Acked: g.Acked, Nacked: g.Nacked, TimedOut: g.TimedOut,
	}
	if len(g.Consumers) > 0 {
		p.Consumers = make([]*ConsumerInfo, len(g.Consumers))
		for i, c := range g.Consumers {
			p.Consumers[i] = ConsumerInfoToProto(c)
		}
	}
	return p
}

// GroupInfoFromProto reads the description of a group.
func GroupInfoFromProto(p *GroupInfo) (verity.GroupInfo, error) {
	settings, err := GroupSettingsFromProto(p.GetSettings())
	if err != nil {
		return verity.GroupInfo{}, fmt.Errorf("group %q: %w", p.GetGroup(), err)
	}
	g := verity.GroupInfo{
		Stream: p.GetStream(), Group: p.GetGroup(), Filter: FilterFromProto(p.GetFilter()), Settings: settings,
		Status: verity.GroupStatus(p.GetStatus()), Checkpointed: p.GetCheckpointed(), Checkpoint: p.GetCheckpoint(),
		LastKnown: p.GetLastKnown(), Lag: p.GetLag(),
		Delivered: p.GetDelivered(), Acked: p.GetAcked(), Nacked: p.GetNacked(), TimedOut: p.GetTimedOut(),
	}
	for _, f := range []struct {
		field string
		v     int64
		to    *int
	}{{"in_flight", p.GetInFlight(), &g.InFlight}, {"waiting", p.GetWaiting(), &g.Waiting}, {"parked", p.GetParked(), &g.Parked}} {
		if *f.to, err = intFromProto(f.field, f.v); err != nil {
			return verity.GroupInfo{}, fmt.Errorf("group %q: %w", p.GetGroup(), err)
		}
	}
	if n := len(p.GetConsumers()); n > 0 {
		g.Consumers = make([]verity.ConsumerInfo, n)
		for i, c := range p.GetConsumers() {
			if g.Consumers[i], err = ConsumerInfoFromProto(c); err != nil {
				return verity.GroupInfo{}, fmt.Errorf("group %q: consumer %d: %w", p.GetGroup(), i, err)
			}
		}
	}
	return g, nil
}

// EventIDsToProto returns the ids of an ack or a nack as 16-byte values.
func EventIDsToProto(ids []uuid.UUID) [][]byte {
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return out
}

// EventIDsFromProto reads the ids of an ack or a nack: each must be 16 bytes.
func EventIDsFromProto(ps [][]byte) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, len(ps))
	for i, p := range ps {
		if len(p) != 16 {
			return nil, fmt.Errorf("event id %d must be 16 bytes (a UUID), got %d bytes", i, len(p))
		}
		copy(out[i][:], p)
	}
	return out, nil
}

// GroupMessageToProto returns the message delivering an event to a consumer.
func GroupMessageToProto(m *verity.GroupMessage) *JoinGroupResponse_Event {
	return &JoinGroupResponse_Event{Event: RecordedEventToProto(&m.Event), RetryCount: int64(m.RetryCount)}
}

// GroupMessageFromProto reads an event delivered to a consumer.
func GroupMessageFromProto(p *JoinGroupResponse_Event) (verity.GroupMessage, error) {
	if p.GetEvent() == nil {
		return verity.GroupMessage{}, fmt.Errorf("a group message holds no event")
	}
	e, err := RecordedEventFromProto(p.GetEvent())
	if err != nil {
		return verity.GroupMessage{}, err
	}
	if p.GetRetryCount() < 0 {
		return verity.GroupMessage{}, fmt.Errorf("group message retry count %d is negative", p.GetRetryCount())
	}
	n, err := intFromProto("group message retry count", p.GetRetryCount())
	if err != nil {
		return verity.GroupMessage{}, err
	}
	return verity.GroupMessage{Event: e, RetryCount: n}, nil
}
