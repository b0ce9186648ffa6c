package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// The management of consumer groups (persistent subscriptions) over HTTP: the routes under
// /subscriptions serve verity.Groups as docs/http-api.md describes. Consuming a group is
// done over gRPC (the Go client, or a KurrentDB client).

// settingsJSON is verity.GroupSettings as the API reads and writes it: durations in
// milliseconds, the strategy and the quarantine mode by name. Zero means the default, and
// a negative value asks for what zero cannot (see verity.GroupSettings).
type settingsJSON struct {
	From                 uint64 `json:"from"`
	FromEnd              bool   `json:"fromEnd"`
	ResolveLinks         bool   `json:"resolveLinks"`
	Strategy             string `json:"strategy"`
	MessageTimeoutMs     int64  `json:"messageTimeoutMs"`
	MaxRetryCount        int    `json:"maxRetryCount"`
	LiveBufferSize       int    `json:"liveBufferSize"`
	ReadBatchSize        int    `json:"readBatchSize"`
	HistoryBufferSize    int    `json:"historyBufferSize"`
	CheckpointAfterMs    int64  `json:"checkpointAfterMs"`
	CheckpointLowerBound int    `json:"checkpointLowerBound"`
	CheckpointUpperBound int    `json:"checkpointUpperBound"`
	MaxConsumers         int    `json:"maxConsumers"`
	ExtraStatistics      bool   `json:"extraStatistics"`
	Quarantine           string `json:"quarantine"`
}

// filterJSON is verity.Filter as the API reads and writes it.
type filterJSON struct {
	StreamPrefixes      []string `json:"streamPrefixes,omitempty"`
	Categories          []string `json:"categories,omitempty"`
	StreamRegexp        string   `json:"streamRegexp,omitempty"`
	EventTypes          []string `json:"eventTypes,omitempty"`
	EventTypePrefixes   []string `json:"eventTypePrefixes,omitempty"`
	EventTypeRegexp     string   `json:"eventTypeRegexp,omitempty"`
	ExcludeSystemEvents bool     `json:"excludeSystemEvents,omitempty"`
}

// groupBody is the body of PUT and POST /subscriptions/{stream}/{group}: the settings'
// fields at the top level, and the filter of a log group under "filter".
type groupBody struct {
	settingsJSON
	Filter *filterJSON `json:"filter"`
}

// groupInfoOut answers GET /subscriptions/{stream}/{group}, and is each entry of a list.
type groupInfoOut struct {
	Stream       string         `json:"stream"`
	Group        string         `json:"group"`
	Filter       *filterJSON    `json:"filter,omitempty"`
	Settings     settingsJSON   `json:"settings"`
	Status       string         `json:"status"`
	Checkpointed bool           `json:"checkpointed"`
	Checkpoint   uint64         `json:"checkpoint"`
	LastKnown    uint64         `json:"lastKnown"`
	Lag          uint64         `json:"lag"`
	InFlight     int            `json:"inFlight"`
	Waiting      int            `json:"waiting"`
	Parked       int            `json:"parked"`
	Delivered    uint64         `json:"delivered"`
	Acked        uint64         `json:"acked"`
	Nacked       uint64         `json:"nacked"`
	TimedOut     uint64         `json:"timedOut"`
	Consumers    []consumerJSON `json:"consumers"`
}

type consumerJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	MaxInFlight int    `json:"maxInFlight"`
	InFlight    int    `json:"inFlight"`
	Delivered   uint64 `json:"delivered"`
	Acked       uint64 `json:"acked"`
	Nacked      uint64 `json:"nacked"`
	Connected   string `json:"connected"`
}

// groupRefOut answers a create, an update, a delete and a replay.
type groupRefOut struct {
	Stream string `json:"stream"`
	Group  string `json:"group"`
}

// maxMs is the most milliseconds a time.Duration holds, either way.
const maxMs = math.MaxInt64 / int64(time.Millisecond)

// decodeGroupSpec decodes the body of PUT or POST /subscriptions/{stream}/{group}; an empty
// body means every default. Names, ranges and the filter's fit to the source are the
// Groups' to judge; the names of strategies and modes, the milliseconds and the filter's
// regular expressions are checked here.
func decodeGroupSpec(op, stream, group string, body []byte) (verity.GroupSpec, error) {
	spec := verity.GroupSpec{Stream: stream, Group: group}
	if c := firstByte(body); c == 0 {
		return spec, nil
	} else if c != '{' {
		return spec, verity.Errorf(verity.Invalid, op, `the request body must be a settings object such as {"strategy": "Pinned"}, not %s`, jsonKind(body))
	}
	var b groupBody
	if err := decodeStrict(op, body, &b); err != nil {
		return spec, err
	}
	s, err := b.settingsJSON.toSettings(op)
	if err != nil {
		return spec, err
	}
	spec.Settings = s
	if b.Filter != nil {
		spec.Filter = b.Filter.toFilter()
		if _, err := spec.Filter.Compile(); err != nil {
			return spec, err
		}
	}
	return spec, nil
}

func (s settingsJSON) toSettings(op string) (verity.GroupSettings, error) {
	out := verity.GroupSettings{
		From: s.From, FromEnd: s.FromEnd, ResolveLinks: s.ResolveLinks,
		MaxRetryCount: s.MaxRetryCount, LiveBufferSize: s.LiveBufferSize, ReadBatchSize: s.ReadBatchSize,
		HistoryBufferSize: s.HistoryBufferSize, CheckpointLowerBound: s.CheckpointLowerBound,
		CheckpointUpperBound: s.CheckpointUpperBound, MaxConsumers: s.MaxConsumers,
		ExtraStatistics: s.ExtraStatistics,
	}
	var err error
	if s.Strategy != "" {
		if out.Strategy, err = verity.ParseConsumerStrategy(s.Strategy); err != nil {
			err.(*verity.Error).Op = op
			return out, err
		}
	}
	if s.Quarantine != "" {
		if out.Quarantine, err = verity.ParseQuarantineMode(s.Quarantine); err != nil {
			err.(*verity.Error).Op = op
			return out, err
		}
	}
	for _, d := range []struct {
		field string
		ms    int64
		to    *time.Duration
	}{{"messageTimeoutMs", s.MessageTimeoutMs, &out.MessageTimeout}, {"checkpointAfterMs", s.CheckpointAfterMs, &out.CheckpointAfter}} {
		if d.ms > maxMs || d.ms < -maxMs {
			return out, verity.Errorf(verity.Invalid, op, "%s %d is out of range (at most %d in either direction)", d.field, d.ms, maxMs)
		}
		*d.to = time.Duration(d.ms) * time.Millisecond
	}
	return out, nil
}

func settingsOut(s verity.GroupSettings) settingsJSON {
	return settingsJSON{
		From: s.From, FromEnd: s.FromEnd, ResolveLinks: s.ResolveLinks, Strategy: s.Strategy.String(),
		MessageTimeoutMs: msOut(s.MessageTimeout), MaxRetryCount: s.MaxRetryCount,
		LiveBufferSize: s.LiveBufferSize, ReadBatchSize: s.ReadBatchSize, HistoryBufferSize: s.HistoryBufferSize,
		CheckpointAfterMs: msOut(s.CheckpointAfter), CheckpointLowerBound: s.CheckpointLowerBound,
		CheckpointUpperBound: s.CheckpointUpperBound, MaxConsumers: s.MaxConsumers,
		ExtraStatistics: s.ExtraStatistics, Quarantine: s.Quarantine.String(),
	}
}

// msOut writes a duration in milliseconds: any negative value (which asks for what zero
// cannot, "never" for a message timeout) as -1, not as the 0 that means the default.
func msOut(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

func (f *filterJSON) toFilter() verity.Filter {
	return verity.Filter{
		StreamPrefixes: f.StreamPrefixes, Categories: f.Categories, StreamRegexp: f.StreamRegexp,
		EventTypes: f.EventTypes, EventTypePrefixes: f.EventTypePrefixes, EventTypeRegexp: f.EventTypeRegexp,
		ExcludeSystemEvents: f.ExcludeSystemEvents,
	}
}

func filterOut(f verity.Filter) *filterJSON {
	if f.IsZero() {
		return nil
	}
	return &filterJSON{
		StreamPrefixes: f.StreamPrefixes, Categories: f.Categories, StreamRegexp: f.StreamRegexp,
		EventTypes: f.EventTypes, EventTypePrefixes: f.EventTypePrefixes, EventTypeRegexp: f.EventTypeRegexp,
		ExcludeSystemEvents: f.ExcludeSystemEvents,
	}
}

// GroupInfoJSON is a group's description as GET /subscriptions/{stream}/{group} answers it,
// ready for encoding/json; `verity groups info --json` prints the same, so that scripts can
// use either.
func GroupInfoJSON(g verity.GroupInfo) any { return groupInfoJSON(g) }

func groupInfoJSON(g verity.GroupInfo) groupInfoOut {
	out := groupInfoOut{
		Stream: g.Stream, Group: g.Group, Filter: filterOut(g.Filter), Settings: settingsOut(g.Settings),
		Status: string(g.Status), Checkpointed: g.Checkpointed, Checkpoint: g.Checkpoint, LastKnown: g.LastKnown,
		Lag: g.Lag, InFlight: g.InFlight, Waiting: g.Waiting, Parked: g.Parked, Delivered: g.Delivered,
		Acked: g.Acked, Nacked: g.Nacked, TimedOut: g.TimedOut, Consumers: make([]consumerJSON, len(g.Consumers)),
	}
	for i, c := range g.Consumers {
		out.Consumers[i] = consumerJSON{
			ID: c.ID, Name: c.Name, MaxInFlight: c.MaxInFlight, InFlight: c.InFlight,
			Delivered: c.Delivered, Acked: c.Acked, Nacked: c.Nacked, Connected: c.Connected.UTC().Format(time.RFC3339Nano),
		}
	}
	return out
}

// groupsOf returns the caller's consumer groups, or Unavailable when the server has none.
func groupsOf(op string, c caller) (verity.Groups, error) {
	if c.groups == nil {
		return nil, verity.Errorf(verity.Unavailable, op, "this server has no consumer groups")
	}
	return c.groups, nil
}

// createGroup serves PUT /subscriptions/{stream}/{group}.
func (h *handler) createGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	return h.putGroup(w, r, c, "create group", http.StatusCreated, verity.Groups.CreateGroup)
}

// updateGroup serves POST /subscriptions/{stream}/{group}.
func (h *handler) updateGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	return h.putGroup(w, r, c, "update group", http.StatusOK, verity.Groups.UpdateGroup)
}

func (h *handler) putGroup(w http.ResponseWriter, r *http.Request, c caller, op string, status int,
	call func(verity.Groups, context.Context, verity.GroupSpec) error) error {
	stream, group := r.PathValue("stream"), r.PathValue("group")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	g, err := groupsOf(op, c)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	spec, err := decodeGroupSpec(op, stream, group, body)
	if err != nil {
		return withStream(err, stream)
	}
	if err := call(g, r.Context(), spec); err != nil {
		return err
	}
	httpjson.Write(w, status, groupRefOut{Stream: stream, Group: group})
	return nil
}

// deleteGroup serves DELETE /subscriptions/{stream}/{group}.
func (h *handler) deleteGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "delete group"
	stream, group := r.PathValue("stream"), r.PathValue("group")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	g, err := groupsOf(op, c)
	if err != nil {
		return err
	}
	if err := g.DeleteGroup(r.Context(), stream, group); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, groupRefOut{Stream: stream, Group: group})
	return nil
}

// getGroup serves GET /subscriptions/{stream}/{group}.
func (h *handler) getGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "get group"
	stream, group := r.PathValue("stream"), r.PathValue("group")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	g, err := groupsOf(op, c)
	if err != nil {
		return err
	}
	info, err := g.GetGroup(r.Context(), stream, group)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, groupInfoJSON(info))
	return nil
}

// listGroups serves GET /subscriptions and GET /subscriptions/{stream}.
func (h *handler) listGroups(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "list groups"
	stream := r.PathValue("stream")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	g, err := groupsOf(op, c)
	if err != nil {
		return err
	}
	infos, err := g.ListGroups(r.Context(), stream)
	if err != nil {
		return err
	}
	out := struct {
		Groups []groupInfoOut `json:"groups"`
	}{Groups: make([]groupInfoOut, len(infos))}
	for i, info := range infos {
		out.Groups[i] = groupInfoJSON(info)
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// replayParked serves POST /subscriptions/{stream}/{group}/replay-parked[?limit=N].
func (h *handler) replayParked(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "replay parked"
	stream, group := r.PathValue("stream"), r.PathValue("group")
	q := r.URL.Query()
	if err := checkParams(op, stream, q, pLimit); err != nil {
		return err
	}
	limit, err := parseReplayLimit(op, stream, q)
	if err != nil {
		return err
	}
	g, err := groupsOf(op, c)
	if err != nil {
		return err
	}
	if err := g.ReplayParked(r.Context(), stream, group, verity.ReplayParkedOptions{Limit: limit}); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, groupRefOut{Stream: stream, Group: group})
	return nil
}

// parseReplayLimit reads the limit of a replay: a whole number ≥ 0, 0 (or none) meaning
// every parked event.
func parseReplayLimit(op, stream string, q url.Values) (int, error) {
	if !q.Has(pLimit) {
		return 0, nil
	}
	s := q.Get(pLimit)
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: fmt.Sprintf("limit %q: want a whole number ≥ 0 (0 means every parked event)", s)}
	}
	return n, nil
}
