package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/eventindex"
	"github.com/verity-dev/verity/protocol/httpapi"
)

// EventIndexFile is the event index's file in the data directory. Deleting it (with its
// -wal and -shm files) while the server is stopped makes the next start rebuild it.
const EventIndexFile = "event-index.sqlite"

// openEventIndex starts the event index over the engine, unless the config turns it off.
func (s *Server) openEventIndex() error {
	if s.cfg.DisableEventIndex {
		return nil
	}
	x, err := eventindex.Open(s.engine, eventindex.Config{Path: filepath.Join(s.cfg.Data, EventIndexFile), Logger: s.log})
	if err != nil {
		return err
	}
	s.events = x
	return nil
}

// EventIndex is the server's event index, nil when the config turns it off.
func (s *Server) EventIndex() *eventindex.Index { return s.events }

// statsTimeout bounds each part's answer, so that one stuck part shows as unhealthy
// instead of stalling /stats.
const statsTimeout = 2 * time.Second

// stats takes the figures of GET /stats from where the server measures them already: the
// engine's counters, the metrics' commit totals and live subscriptions, the groups, the
// registry and the event index (which also counts the streams). A part that fails shows in health; the call does not fail.
func (s *Server) stats(ctx context.Context) (httpapi.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	es := s.engine.Stats()
	now := s.cfg.Now
	if now == nil {
		now = time.Now
	}
	out := httpapi.Stats{
		Time:              now().UTC().Format(time.RFC3339Nano),
		LastPosition:      es.LastPosition,
		DiskBytes:         es.DiskBytes,
		Segments:          es.Segments,
		Appends:           es.Appends,
		AppendedEvents:    es.Events,
		AppendedBytes:     es.Bytes,
		Fsyncs:            es.Fsyncs,
		FsyncSeconds:      float64(es.FsyncNanos) / 1e9,
		GroupCommits:      s.metrics.commits.Load(),
		GroupCommitEvents: s.metrics.commitEvents.Load(),
		Subscriptions:     s.metrics.activeSubscriptions(),
		UptimeSeconds:     time.Since(s.started).Seconds(),
		Health:            map[string]string{},
	}
	health := func(err error) string {
		if err != nil {
			return err.Error()
		}
		return "ok"
	}
	// A read of the last event shows whether the store answers (it fails once closed or
	// failed).
	_, err := s.engine.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	out.Health["store"] = health(err)
	groups, err := s.groups.ListGroups(ctx, "")
	out.Groups = len(groups)
	out.Health["groups"] = health(err)
	_, err = s.registry.reg.List(ctx, "")
	out.Health["registry"] = health(err)
	if s.events == nil {
		out.Health["eventIndex"] = "off"
	} else {
		st, err := s.events.Status(ctx)
		switch {
		case err != nil:
			out.Health["eventIndex"] = health(err)
		case st.LastError != nil:
			out.Health["eventIndex"] = "following the log failed, retrying: " + st.LastError.Error()
			out.EventIndexPosition = &st.Position
			out.Streams, out.StreamsIndexedUpTo = &st.Streams, &st.StreamsPosition
		default:
			out.Health["eventIndex"] = "ok"
			out.EventIndexPosition = &st.Position
			out.Streams, out.StreamsIndexedUpTo = &st.Streams, &st.StreamsPosition
		}
	}
	return out, nil
}
