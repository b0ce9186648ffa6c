package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/internal/httpjson"
	"github.com/verity-dev/verity/internal/sse"
)

// Stats are the server's live figures, as GET /stats answers them. The server fills them
// from where it measures them already (its engine and its metrics).
type Stats struct {
	// Time is when the figures were taken (RFC 3339), so a client can compute rates.
	Time string `json:"time"`
	// LastPosition is the position of the last event in the log: the events it holds.
	LastPosition uint64 `json:"lastPosition"`
	// Streams counts the streams written up to StreamsIndexedUpTo, as the event index
	// counts them: streams deleted after the index saw them included, those deleted
	// before it read them (a rebuilt index) not, metadata streams ($$name) not. Left out
	// when the server keeps no event index (the engine cannot count streams cheaply).
	Streams *uint64 `json:"streams,omitempty"`
	// StreamsIndexedUpTo is the position up to which Streams counts (compare
	// LastPosition); left out with Streams.
	StreamsIndexedUpTo *uint64 `json:"streamsIndexedUpTo,omitempty"`
	// DiskBytes and Segments are the size and number of the log's segment files.
	DiskBytes int64 `json:"diskBytes"`
	Segments  int   `json:"segments"`
	// Totals since the server started.
	Appends        uint64  `json:"appends"`
	AppendedEvents uint64  `json:"appendedEvents"`
	AppendedBytes  uint64  `json:"appendedBytes"`
	Fsyncs         uint64  `json:"fsyncs"`
	FsyncSeconds   float64 `json:"fsyncSeconds"`
	// GroupCommits counts commits (each made durable by one fsync), GroupCommitEvents the
	// events they held: their ratio is the mean group commit size.
	GroupCommits      uint64 `json:"groupCommits"`
	GroupCommitEvents uint64 `json:"groupCommitEvents"`
	// Subscriptions are the live subscriptions of every protocol; Groups the consumer
	// groups.
	Subscriptions int     `json:"subscriptions"`
	Groups        int     `json:"groups"`
	UptimeSeconds float64 `json:"uptimeSeconds"`
	// EventIndexPosition is how far the event index has got (compare LastPosition); left
	// out when the server keeps none.
	EventIndexPosition *uint64 `json:"eventIndexPosition,omitempty"`
	// Health of each part: "ok", "off", or what is wrong.
	Health map[string]string `json:"health"`
}

// StatsFunc takes the server's figures now. It is called concurrently.
type StatsFunc func(ctx context.Context) (Stats, error)

// DefaultStatsInterval is Options.StatsInterval's default.
const DefaultStatsInterval = time.Second

// mayReadStats lets admins and $ops see the server's figures: they describe the whole
// server, every stream together, as the system streams $ops may read do.
func mayReadStats(op string, p auth.Principal) error {
	switch {
	case p.IsAdmin() || p.HasRole(auth.RoleOps):
		return nil
	case p.Anonymous():
		return verity.Errorf(verity.Unauthenticated, op, "log in as a user with the role %s or %s to see the server's stats", auth.RoleAdmins, auth.RoleOps)
	}
	return verity.Errorf(verity.PermissionDenied, op, "user %q may not see the server's stats: it takes the role %s or %s", p.Name, auth.RoleAdmins, auth.RoleOps)
}

func (h *handler) statsSource(op string, c caller) (StatsFunc, error) {
	if err := mayReadStats(op, c.principal); err != nil {
		return nil, err
	}
	if h.opts.Stats == nil {
		return nil, verity.Errorf(verity.Unavailable, op, "this server keeps no stats")
	}
	return h.opts.Stats, nil
}

// getStats serves GET /stats.
func (h *handler) getStats(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "stats"
	if err := checkParams(op, "", r.URL.Query()); err != nil {
		return err
	}
	stats, err := h.statsSource(op, c)
	if err != nil {
		return err
	}
	s, err := stats(r.Context())
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, s)
	return nil
}

// streamStats serves GET /stats/stream: the figures of GET /stats as server-sent events
// ("stats"), one at once and one every StatsInterval, until the client goes away or the
// server shuts down. It counts against the client's live subscriptions.
func (h *handler) streamStats(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "stats stream"
	if err := checkParams(op, "", r.URL.Query()); err != nil {
		return err
	}
	stats, err := h.statsSource(op, c)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	release, err := h.acquireSub(clientKey(r, c.principal))
	if err != nil {
		return err
	}
	defer release()
	ctx := r.Context()
	sw := sse.Start(w, h.opts.SSEWriteTimeout)
	defer sw.End()
	tick := time.NewTicker(h.opts.StatsInterval)
	defer tick.Stop()
	for {
		s, err := stats(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			b, _ := httpjson.Marshal(errorBody{Error: errorJSONOf(err)})
			_ = sw.Message("error", "", b)
			return nil
		}
		b, err := httpjson.Marshal(s)
		if err != nil {
			return nil
		}
		if sw.Message("stats", "", b) != nil {
			return nil // the client is gone or stalled
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
