package kurrentdb

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/persistent"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"

	"github.com/verity-dev/verity"
)

// These tests send persistent subscription requests the official Go client does not: old
// clients' forms, ticks, malformed ones.

func streamCreate(stream, group string, s *persistent.CreateReq_Settings) *persistent.CreateReq {
	return &persistent.CreateReq{Options: &persistent.CreateReq_Options{
		GroupName: group, Settings: s,
		StreamOption: &persistent.CreateReq_Options_Stream{Stream: &persistent.CreateReq_StreamOptions{
			StreamIdentifier: streamIdentifier(stream),
			RevisionOption:   &persistent.CreateReq_StreamOptions_Start{Start: &shared.Empty{}},
		}},
	}}
}

func TestMalformedPersistentRequestsAreInvalidAndChangeNothing(t *testing.T) {
	e := newEnv(t)
	pc := persistent.NewPersistentSubscriptionsClient(e.conn(t))
	cases := []struct {
		name string
		req  *persistent.CreateReq
		want string
	}{
		{"no options", &persistent.CreateReq{}, "no options"},
		{"a negative retry count", streamCreate("s-1", "g", &persistent.CreateReq_Settings{MaxRetryCount: -1}), "max_retry_count is -1"},
		{"a negative buffer", streamCreate("s-1", "g", &persistent.CreateReq_Settings{LiveBufferSize: -5}), "live_buffer_size is -5"},
		{"an unknown strategy", streamCreate("s-1", "g", &persistent.CreateReq_Settings{ConsumerStrategy: "Random"}), `"Random"`},
		{"a bad filter", &persistent.CreateReq{Options: &persistent.CreateReq_Options{GroupName: "g", Settings: &persistent.CreateReq_Settings{},
			StreamOption: &persistent.CreateReq_Options_All{All: &persistent.CreateReq_AllOptions{
				AllOption: &persistent.CreateReq_AllOptions_Start{Start: &shared.Empty{}},
				FilterOption: &persistent.CreateReq_AllOptions_Filter{Filter: &persistent.CreateReq_AllOptions_FilterOptions{
					Filter: &persistent.CreateReq_AllOptions_FilterOptions_EventType{EventType: &persistent.CreateReq_AllOptions_FilterOptions_Expression{Regex: "(["}}}},
			}}}}, `"(["`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pc.Create(testCtx(t), tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want InvalidArgument saying %q", err, tc.want)
			}
		})
	}
	groups, err := e.groups.ListGroups(testCtx(t), "")
	if err != nil || len(groups) != 0 {
		t.Fatalf("groups after refused creates: %v %+v", err, groups)
	}
}

func TestPersistentCreateOfOldClientsAndTicks(t *testing.T) {
	e := newEnv(t)
	pc := persistent.NewPersistentSubscriptionsClient(e.conn(t))
	ctx := testCtx(t)
	// Before 21: the stream in the top-level field, the start in settings.revision, the
	// strategy as the enum, the durations in ticks.
	_, err := pc.Create(ctx, &persistent.CreateReq{Options: &persistent.CreateReq_Options{
		StreamIdentifier: streamIdentifier("s-1"), GroupName: "old",
		Settings: &persistent.CreateReq_Settings{
			Revision: 7, NamedConsumerStrategy: persistent.CreateReq_Pinned, MaxRetryCount: 3,
			MessageTimeout:  &persistent.CreateReq_Settings_MessageTimeoutTicks{MessageTimeoutTicks: int64(5 * time.Second / 100)},
			CheckpointAfter: &persistent.CreateReq_Settings_CheckpointAfterTicks{CheckpointAfterTicks: int64(time.Second / 100)},
		},
	}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	g, err := e.groups.GetGroup(ctx, "s-1", "old")
	if err != nil {
		t.Fatal(err)
	}
	st := g.Settings
	if st.From != 7 || st.FromEnd || st.Strategy != verity.Pinned || st.MaxRetryCount != 3 || st.MessageTimeout != 5*time.Second || st.CheckpointAfter != time.Second {
		t.Fatalf("settings %+v, want from 7, Pinned, 3 retries, 5 s timeout, checkpoint after 1 s", st)
	}
	info, err := pc.GetInfo(ctx, &persistent.GetInfoReq{Options: &persistent.GetInfoReq_Options{
		GroupName: "old", StreamOption: &persistent.GetInfoReq_Options_StreamIdentifier{StreamIdentifier: streamIdentifier("s-1")}}})
	if err != nil {
		t.Fatal(err)
	}
	si := info.GetSubscriptionInfo()
	if si.GetStartFrom() != "7" || si.GetMessageTimeoutMilliseconds() != 5000 || si.GetNamedConsumerStrategy() != "Pinned" {
		t.Fatalf("info %v, want start 7, timeout 5000 ms, Pinned", si)
	}
}

func TestPersistentGroupErrorsCarryKurrentDBTrailers(t *testing.T) {
	e := newEnv(t)
	pc := persistent.NewPersistentSubscriptionsClient(e.conn(t))
	var trailer metadata.MD
	_, err := pc.Delete(testCtx(t), &persistent.DeleteReq{Options: &persistent.DeleteReq_Options{
		GroupName: "g", StreamOption: &persistent.DeleteReq_Options_StreamIdentifier{StreamIdentifier: streamIdentifier("s-1")}}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("delete of a missing group: %v, want NotFound", err)
	}
	if got := trailer.Get(trailerException); len(got) != 1 || got[0] != exceptionGroupNotFound {
		t.Fatalf("exception trailer %v, want %s", got, exceptionGroupNotFound)
	}
	if got := trailer.Get(trailerGroupName); len(got) != 1 || got[0] != "g" {
		t.Fatalf("group-name trailer %v, want g", got)
	}
}

func TestPersistentReadMustStartWithOptions(t *testing.T) {
	e := newEnv(t)
	pc := persistent.NewPersistentSubscriptionsClient(e.conn(t))
	call, err := pc.Read(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := call.Send(&persistent.ReadReq{Content: &persistent.ReadReq_Ack_{Ack: &persistent.ReadReq_Ack{}}}); err != nil {
		t.Fatal(err)
	}
	_, err = call.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no options") {
		t.Fatalf("err = %v, want InvalidArgument saying no options", err)
	}
}

func TestWireSettingsMapOntoGroupSettings(t *testing.T) {
	cases := []struct {
		name string
		in   wireSettings
		want func(verity.GroupSettings) bool
	}{
		{"zero timeout means none", wireSettings{strategy: "RoundRobin"}, func(s verity.GroupSettings) bool { return s.MessageTimeout < 0 }},
		{"zero retries park at once", wireSettings{strategy: "RoundRobin"}, func(s verity.GroupSettings) bool { return s.MaxRetryCount < 0 }},
		{"zero min checkpoint count means none", wireSettings{strategy: "RoundRobin"}, func(s verity.GroupSettings) bool { return s.CheckpointLowerBound < 0 }},
		{"zero max checkpoint count checkpoints every ack", wireSettings{strategy: "RoundRobin"}, func(s verity.GroupSettings) bool { return s.CheckpointUpperBound == 1 }},
		{"zero checkpoint interval is the least", wireSettings{strategy: "RoundRobin"}, func(s verity.GroupSettings) bool { return s.CheckpointAfter == time.Millisecond }},
		{"values pass as sent", wireSettings{strategy: "PinnedByCorrelation", maxRetryCount: 4, messageTimeout: time.Second, liveBuffer: 7, maxSubscribers: 2},
			func(s verity.GroupSettings) bool {
				return s.Strategy == verity.PinnedByCorrelation && s.MaxRetryCount == 4 && s.MessageTimeout == time.Second && s.LiveBufferSize == 7 && s.MaxConsumers == 2
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.groupSettings("create")
			if err != nil || !tc.want(got) {
				t.Fatalf("groupSettings(%+v) = %+v, %v", tc.in, got, err)
			}
		})
	}
}

// TestPersistentStartOfTheLargestPositionIsTheEnd: as in a create, the largest commit
// position in an update of a log group means its end.
func TestPersistentStartOfTheLargestPositionIsTheEnd(t *testing.T) {
	settings := &persistent.UpdateReq_Settings{MaxRetryCount: 3}
	spec, err := updateSpec("update", &persistent.UpdateReq_Options{GroupName: "g", Settings: settings,
		StreamOption: &persistent.UpdateReq_Options_All{All: &persistent.UpdateReq_AllOptions{
			AllOption: &persistent.UpdateReq_AllOptions_Position{Position: &persistent.UpdateReq_Position{
				CommitPosition: math.MaxUint64, PreparePosition: math.MaxUint64}},
		}}})
	if err != nil || spec.Stream != verity.AllStream || !spec.Settings.FromEnd || spec.Settings.From != 0 {
		t.Fatalf("update from the largest position: %+v, %v", spec, err)
	}
	cspec, err := createSpec("create", &persistent.CreateReq_Options{GroupName: "g", Settings: &persistent.CreateReq_Settings{},
		StreamOption: &persistent.CreateReq_Options_All{All: &persistent.CreateReq_AllOptions{
			AllOption: &persistent.CreateReq_AllOptions_Position{Position: &persistent.CreateReq_Position{
				CommitPosition: math.MaxUint64, PreparePosition: math.MaxUint64}},
		}}})
	if err != nil || !cspec.Settings.FromEnd || cspec.Settings.From != 0 {
		t.Fatalf("create from the largest position: %+v, %v", cspec, err)
	}
}
