package verityv1_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	verityv1 "github.com/verity-dev/verity/proto/verity/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fullSpec sets every field of a spec to a value other than its zero.
func fullSpec() verity.GroupSpec {
	return verity.GroupSpec{
		Stream: verity.AllStream, Group: "billing",
		Filter: verity.Filter{
			StreamPrefixes: []string{"order-"}, Categories: []string{"order"}, StreamRegexp: "^o",
			EventTypes: []string{"OrderPlaced"}, EventTypePrefixes: []string{"Order"}, EventTypeRegexp: "d$", ExcludeSystemEvents: true,
		},
		Settings: verity.GroupSettings{
			From: 7, FromEnd: true, ResolveLinks: true, Strategy: verity.PinnedByCorrelation,
			MessageTimeout: -1, MaxRetryCount: -1, LiveBufferSize: 11, ReadBatchSize: 12, HistoryBufferSize: 13,
			CheckpointAfter: 1500 * time.Millisecond, CheckpointLowerBound: 3, CheckpointUpperBound: 30,
			MaxConsumers: 4, ExtraStatistics: true, Quarantine: verity.QuarantineOff,
		},
	}
}

// fullInfo sets every field of a group's description to a value other than its zero.
func fullInfo() verity.GroupInfo {
	s := fullSpec()
	return verity.GroupInfo{
		Stream: s.Stream, Group: s.Group, Filter: s.Filter, Settings: s.Settings, Status: verity.GroupLive,
		Checkpointed: true, Checkpoint: 5, LastKnown: 9, Lag: 4, InFlight: 2, Waiting: 1, Parked: 3,
		Delivered: 20, Acked: 17, Nacked: 6, TimedOut: 2,
		Consumers: []verity.ConsumerInfo{{
			ID: "c-1", Name: "host-a", MaxInFlight: 10, InFlight: 2, Delivered: 20, Acked: 17, Nacked: 6,
			Connected: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC),
		}},
	}
}

// normSpec and normInfo make empty and nil lists alike for comparisons.
func normSpec(s verity.GroupSpec) verity.GroupSpec {
	s.Filter = verityv1.FilterFromProto(verityv1.FilterToProto(s.Filter))
	return s
}

func normInfo(g verity.GroupInfo) verity.GroupInfo {
	g.Filter = verityv1.FilterFromProto(verityv1.FilterToProto(g.Filter))
	if len(g.Consumers) == 0 {
		g.Consumers = nil
	}
	return g
}

func TestEveryFieldOfSpecAndInfoSurvivesARoundTrip(t *testing.T) {
	spec := fullSpec()
	gotSpec, err := verityv1.GroupSpecFromProto(verityv1.GroupSpecToProto(spec))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotSpec, spec) {
		t.Fatalf("spec %+v came back as %+v", spec, gotSpec)
	}
	info := fullInfo()
	gotInfo, err := verityv1.GroupInfoFromProto(verityv1.GroupInfoToProto(info))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotInfo, info) {
		t.Fatalf("info %+v came back as %+v", info, gotInfo)
	}
	// Every field set means a change to the contract's structs that the conversions miss
	// shows up here as a zero field.
	for _, v := range []any{info, info.Settings, info.Consumers[0], info.Filter} {
		rv := reflect.ValueOf(v)
		for i := 0; i < rv.NumField(); i++ {
			if rv.Field(i).IsZero() {
				t.Errorf("%T.%s is zero in the test value; give it a value so its conversion is tested", v, rv.Type().Field(i).Name)
			}
		}
	}
}

func TestBadGroupMessagesAreRefusedNamingTheField(t *testing.T) {
	cases := []struct {
		name string
		read func() error
		want string
	}{
		{"an unknown strategy", func() error {
			_, err := verityv1.GroupSettingsFromProto(&verityv1.GroupSettings{Strategy: 9})
			return err
		}, "consumer strategy 9"},
		{"an unknown quarantine mode", func() error {
			_, err := verityv1.GroupSettingsFromProto(&verityv1.GroupSettings{Quarantine: -1})
			return err
		}, "quarantine mode -1"},
		{"a message timeout out of range", func() error {
			_, err := verityv1.GroupSettingsFromProto(&verityv1.GroupSettings{MessageTimeout: &durationpb.Duration{Seconds: 1 << 40}})
			return err
		}, "message_timeout"},
		{"an invalid checkpoint interval", func() error {
			_, err := verityv1.GroupSettingsFromProto(&verityv1.GroupSettings{CheckpointAfter: &durationpb.Duration{Seconds: 1, Nanos: -1}})
			return err
		}, "checkpoint_after"},
		{"an unspecified nack action", func() error {
			_, err := verityv1.NackActionFromProto(verityv1.NackAction_NACK_ACTION_UNSPECIFIED)
			return err
		}, "nack action 0"},
		{"an event id of 15 bytes", func() error {
			_, err := verityv1.EventIDsFromProto([][]byte{make([]byte, 16), make([]byte, 15)})
			return err
		}, "event id 1 must be 16 bytes"},
		{"a negative retry count", func() error {
			id := uuid.New()
			_, err := verityv1.GroupMessageFromProto(&verityv1.JoinGroupResponse_Event{
				Event:      &verityv1.RecordedEvent{Id: id[:], Created: timestamppb.Now()},
				RetryCount: -1,
			})
			return err
		}, "retry count -1"},
		{"a group message without an event", func() error {
			_, err := verityv1.GroupMessageFromProto(&verityv1.JoinGroupResponse_Event{})
			return err
		}, "no event"},
		{"a consumer's connection time out of range", func() error {
			_, err := verityv1.GroupInfoFromProto(&verityv1.GroupInfo{Consumers: []*verityv1.ConsumerInfo{{Connected: &timestamppb.Timestamp{Seconds: 1 << 62}}}})
			return err
		}, "consumer connected"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			err := c.read()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestEnumsMatchTheContract(t *testing.T) {
	for s := verity.RoundRobin; s <= verity.PinnedByCorrelation; s++ {
		if back, err := verityv1.StrategyFromProto(verityv1.StrategyToProto(s)); err != nil || back != s {
			t.Errorf("strategy %v came back as %v, %v", s, back, err)
		}
	}
	for q := verity.QuarantineDefault; q <= verity.QuarantineOff; q++ {
		if back, err := verityv1.QuarantineFromProto(verityv1.QuarantineToProto(q)); err != nil || back != q {
			t.Errorf("quarantine %v came back as %v, %v", q, back, err)
		}
	}
	for a := verity.NackPark; a <= verity.NackStop; a++ {
		if back, err := verityv1.NackActionFromProto(verityv1.NackActionToProto(a)); err != nil || back != a {
			t.Errorf("nack action %v came back as %v, %v", a, back, err)
		}
	}
	names := map[verityv1.ConsumerStrategy]verity.ConsumerStrategy{
		verityv1.ConsumerStrategy_CONSUMER_STRATEGY_DISPATCH_TO_SINGLE:    verity.DispatchToSingle,
		verityv1.ConsumerStrategy_CONSUMER_STRATEGY_PINNED:                verity.Pinned,
		verityv1.ConsumerStrategy_CONSUMER_STRATEGY_PINNED_BY_CORRELATION: verity.PinnedByCorrelation,
	}
	for p, s := range names {
		if got, _ := verityv1.StrategyFromProto(p); got != s {
			t.Errorf("%v reads as %v, want %v", p, got, s)
		}
	}
}
