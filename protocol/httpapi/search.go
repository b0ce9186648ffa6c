package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// Stream search parameters and bounds (docs/http-api.md, "Console support").
const (
	pPrefix = "prefix"
	pBefore = "before"
	pSystem = "system"

	// DefaultSearchLimit and MaxSearchLimit bound the streams of one search page.
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
	// DefaultSearchScanBudget is Options.SearchScanBudget's default.
	DefaultSearchScanBudget = 50_000
	// searchChunk is how many events one read of a search fetches: small, because the
	// events come with their payloads and only their stream names are needed.
	searchChunk = 256
)

// streamOut is one stream found by a search: its last event.
type streamOut struct {
	Name         string `json:"name"`
	LastPosition uint64 `json:"lastPosition"`
	LastRevision uint64 `json:"lastRevision"`
	LastType     string `json:"lastType"`
	LastTime     string `json:"lastTime"`
}

// searchPage answers GET /streams.
type searchPage struct {
	Streams []streamOut `json:"streams"`
	// Next is the before of the following page: "" once the start of the log was reached.
	Next string `json:"next"`
}

// searchStreams serves GET /streams: the streams whose events the log holds, most recently
// written first, found by reading the log backwards from before (exclusive; default the end).
// A page ends after limit streams or after the scan budget of events, so that it answers
// quickly on any log; next says where the following page starts.
//
// The scan reads the unguarded log (Options.Log) when the server gives it, because a
// non-admin may not read $all without a filter; what it finds is shown only through the
// caller's own store: each stream is listed only if the caller may read it (a read of its
// last event, the same check as GET /streams/{stream}), so a search reveals no stream name
// its caller could not read. Without Options.Log, it reads the caller's store with the
// filter, so a non-admin must give a prefix or a category they may read.
func (h *handler) searchStreams(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "search streams"
	q := r.URL.Query()
	if err := checkParams(op, "", q, pPrefix, pCategory, pLimit, pBefore, pSystem); err != nil {
		return err
	}
	prefix, category := q.Get(pPrefix), q.Get(pCategory)
	limit, err := parseLimit(op, "", q, DefaultSearchLimit, MaxSearchLimit)
	if err != nil {
		return err
	}
	var before uint64
	if s := q.Get(pBefore); s != "" {
		if before, err = strconv.ParseUint(s, 10, 64); err != nil || before == 0 {
			return verity.Errorf(verity.Invalid, op, "before %q: want a log position ≥ 1 (the next of the previous page), or leave it out for the end of the log", s)
		}
	}
	system := false
	if s := q.Get(pSystem); s != "" {
		if system, err = strconv.ParseBool(s); err != nil {
			return verity.Errorf(verity.Invalid, op, "system %q: want true or false", s)
		}
	}

	// The category index serves a category, or a prefix that names one ("order-4" is in
	// category "order"): its reads cost what they return. Anything else is matched here,
	// on the scanned events, so that the budget bounds the work.
	src, filter := h.opts.Log, verity.Filter{}
	if category == "" && strings.Contains(prefix, "-") {
		category = verity.Category(prefix)
	}
	if category != "" {
		filter.Categories = []string{category}
	}
	if src == nil {
		src = c.store
		if category == "" && prefix != "" {
			filter.StreamPrefixes = []string{prefix}
		}
	}
	wanted := func(stream string) bool {
		return strings.HasPrefix(stream, prefix) && (system || !verity.IsSystemStream(stream)) &&
			(category == "" || verity.Category(stream) == category)
	}

	page := searchPage{Streams: []streamOut{}}
	seen := map[string]bool{}
	if before == 1 {
		httpjson.Write(w, http.StatusOK, page)
		return nil
	}
	opts := verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: before == 0, From: before - 1, Filter: filter}
	budget := h.opts.SearchScanBudget
	scanned := 0
scan:
	for {
		opts.Limit = min(searchChunk, budget-scanned)
		evs, err := src.ReadAll(r.Context(), opts)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break // the start of the log: next stays ""
		}
		var last uint64
		for _, e := range evs {
			scanned++
			last = e.Position
			if seen[e.Stream] || !wanted(e.Stream) {
				continue
			}
			seen[e.Stream] = true
			s, ok, err := lastEventVisible(r.Context(), c.store, e.Stream, before)
			if err != nil {
				return err
			}
			if ok {
				page.Streams = append(page.Streams, s)
			}
			if len(page.Streams) == limit {
				if last > 1 {
					page.Next = strconv.FormatUint(last, 10)
				}
				break scan
			}
		}
		if last <= 1 {
			break
		}
		if scanned >= budget {
			page.Next = strconv.FormatUint(last, 10)
			break
		}
		opts.From, opts.FromEnd = last-1, false
	}
	// An anonymous caller with nothing to see is told to log in, whether or not the page
	// found streams hidden from them: answering so only when it did would tell them that
	// streams of that prefix exist.
	if c.principal.Anonymous() && len(page.Streams) == 0 {
		return verity.Errorf(verity.Unauthenticated, op, "log in to search streams: no stream on this page is open to anonymous callers")
	}
	httpjson.Write(w, http.StatusOK, page)
	return nil
}

// lastEventVisible reads a stream's last event through the caller's store. ok is false
// when the caller may not read the stream or it has no visible events (deleted, hidden by
// its metadata), and when its last event is at or past before (not 0): a page before that
// one listed it.
func lastEventVisible(ctx context.Context, store verity.Store, stream string, before uint64) (streamOut, bool, error) {
	evs, err := store.ReadStream(ctx, stream, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil {
		if hidden(err) {
			return streamOut{}, false, nil
		}
		return streamOut{}, false, err
	}
	if len(evs) == 0 || before > 0 && evs[0].Position >= before {
		return streamOut{}, false, nil
	}
	e := evs[0]
	return streamOut{Name: stream, LastPosition: e.Position, LastRevision: e.Revision, LastType: e.Type,
		LastTime: e.Created.UTC().Format(time.RFC3339Nano)}, true, nil
}

// hidden reports whether a read failed because the caller may not see what they asked
// for, or it is gone: the console-support endpoints leave such things out rather than
// fail. An anonymous caller's refusal (Unauthenticated) is among them: the console-support
// endpoints only read what the log or the index found, so failing on it would tell the
// caller that the thing exists, and its error names the stream.
func hidden(err error) bool {
	var e *verity.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case verity.PermissionDenied, verity.Unauthenticated, verity.NotFound, verity.Deleted:
		return true
	}
	return false
}
