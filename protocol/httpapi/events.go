package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/eventindex"
	"github.com/verity-dev/verity/internal/httpjson"
)

// EventIndex finds events by id and by the ids their metadata links them by; package
// eventindex implements it. It knows only where events are: the API fetches each one
// through the caller's store, so the index never decides who sees what. Its methods are
// called concurrently.
type EventIndex interface {
	// Lookup returns where the event with this id is; NotFound when none is indexed.
	Lookup(ctx context.Context, id string) (eventindex.Ref, error)
	// CausedBy returns up to limit events whose causation id is id, in log order.
	CausedBy(ctx context.Context, id string, limit int) ([]eventindex.Ref, error)
	// Correlated returns up to limit events of correlation id (and the event whose id it
	// is), newest first, below position before (0: no bound).
	Correlated(ctx context.Context, id string, before uint64, limit int) ([]eventindex.Ref, error)
}

// Bounds of the causation chain (GET /events/{id}/chain).
const (
	DefaultChainLimit = 50
	MaxChainLimit     = 500
)

// linkedEventOut is an event with the links of its metadata spelled out, for the console
// to draw a causation tree without parsing metadata.
type linkedEventOut struct {
	eventOut
	CausationID   string `json:"causationId,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
}

// chainOut answers GET /events/{id}/chain.
type chainOut struct {
	Event linkedEventOut `json:"event"`
	// Causes go from the event's cause up to the root.
	Causes []linkedEventOut `json:"causes"`
	// Effects are breadth first: the events the event caused, then theirs.
	Effects []linkedEventOut `json:"effects"`
	// Correlation holds the other events of the event's correlation, newest first.
	Correlation []linkedEventOut `json:"correlation"`
}

// correlationOut answers GET /correlations/{id}.
type correlationOut struct {
	CorrelationID string           `json:"correlationId"`
	Events        []linkedEventOut `json:"events"`
	// Next is the before of the following page; "" when there is none.
	Next string `json:"next"`
}

func (h *handler) eventIndex(op string) (EventIndex, error) {
	if h.opts.Events == nil {
		return nil, verity.Errorf(verity.Unavailable, op, "this server keeps no event index (see docs/server.md)")
	}
	return h.opts.Events, nil
}

// fetch reads an indexed event through the caller's store. ok is false when the caller
// may not read its stream, or the event is no longer visible (deleted, truncated,
// scavenged), or the stream's event at that revision is another one.
func fetch(ctx context.Context, c caller, ref eventindex.Ref) (linkedEventOut, bool, error) {
	evs, err := c.store.ReadStream(ctx, ref.Stream, verity.ReadStreamOptions{From: ref.Revision, Limit: 1})
	if err != nil {
		if hidden(err) {
			return linkedEventOut{}, false, nil
		}
		return linkedEventOut{}, false, err
	}
	if len(evs) == 0 || evs[0].ID.String() != ref.ID || evs[0].Revision != ref.Revision {
		return linkedEventOut{}, false, nil
	}
	return linkedEventOut{eventOut: encodeEvent(evs[0]), CausationID: ref.CausationID, CorrelationID: ref.CorrelationID}, true, nil
}

// lookup finds and fetches the event of the request's {id}: NotFound alike when no event
// has the id and when the caller may not read it, so that the answer does not tell which.
func (h *handler) lookup(ctx context.Context, op string, c caller, id string) (eventindex.Ref, linkedEventOut, error) {
	idx, err := h.eventIndex(op)
	if err != nil {
		return eventindex.Ref{}, linkedEventOut{}, err
	}
	notFound := verity.Errorf(verity.NotFound, op, "no event with id %q (that you may read)", id)
	if c.principal.Anonymous() {
		notFound = verity.Errorf(verity.NotFound, op, "no event with id %q that an anonymous caller may read; log in to see more", id)
	}
	ref, err := idx.Lookup(ctx, id)
	if err != nil {
		if verity.KindOf(err) == verity.NotFound {
			return eventindex.Ref{}, linkedEventOut{}, notFound
		}
		return eventindex.Ref{}, linkedEventOut{}, err
	}
	ev, ok, err := fetch(ctx, c, ref)
	if err != nil {
		return eventindex.Ref{}, linkedEventOut{}, err
	}
	if !ok {
		return eventindex.Ref{}, linkedEventOut{}, notFound
	}
	return ref, ev, nil
}

// getEvent serves GET /events/{id}.
func (h *handler) getEvent(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "get event"
	if err := checkParams(op, "", r.URL.Query()); err != nil {
		return err
	}
	_, ev, err := h.lookup(r.Context(), op, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, ev)
	return nil
}

// getChain serves GET /events/{id}/chain: the event, its causes up to the root, its
// effects breadth first, and the rest of its correlation. Events the caller may not read
// are left out, but followed: a visible effect of a hidden one is still found, and carries
// the hidden one's id as its causationId.
func (h *handler) getChain(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "event chain"
	q := r.URL.Query()
	if err := checkParams(op, "", q, pLimit); err != nil {
		return err
	}
	limit, err := parseLimit(op, "", q, DefaultChainLimit, MaxChainLimit)
	if err != nil {
		return err
	}
	ctx := r.Context()
	ref, ev, err := h.lookup(ctx, op, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	idx := h.opts.Events
	out := chainOut{Event: ev, Causes: []linkedEventOut{}, Effects: []linkedEventOut{}, Correlation: []linkedEventOut{}}
	// Every id followed is remembered, so a cycle in bad metadata ends, and the index is
	// asked at most a bounded number of times however many events are hidden.
	steps := 0
	maxSteps := 4 * limit
	visited := map[string]bool{ref.ID: true}

	for cause := ref.CausationID; cause != "" && !visited[cause] && len(out.Causes) < limit && steps < maxSteps; steps++ {
		visited[cause] = true
		cref, err := idx.Lookup(ctx, cause)
		if verity.KindOf(err) == verity.NotFound {
			break // caused by a command, or by an event the index has not seen
		}
		if err != nil {
			return err
		}
		cev, ok, err := fetch(ctx, c, cref)
		if err != nil {
			return err
		}
		if ok {
			out.Causes = append(out.Causes, cev)
		}
		cause = cref.CausationID
	}

	queue := []string{ref.ID}
	for len(queue) > 0 && len(out.Effects) < limit && steps < maxSteps {
		parent := queue[0]
		queue = queue[1:]
		steps++
		refs, err := idx.CausedBy(ctx, parent, maxSteps-steps+1)
		if err != nil {
			return err
		}
		for _, eref := range refs {
			if visited[eref.ID] || len(out.Effects) >= limit || steps >= maxSteps {
				continue
			}
			visited[eref.ID] = true
			steps++
			eev, ok, err := fetch(ctx, c, eref)
			if err != nil {
				return err
			}
			if ok {
				out.Effects = append(out.Effects, eev)
			}
			queue = append(queue, eref.ID)
		}
	}

	corr := ref.CorrelationID
	if corr == "" {
		corr = ref.ID // the event may be its workflow's root, correlating its effects by its id
	}
	if out.Correlation, _, err = h.correlated(ctx, c, corr, 0, limit, ref.ID); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// correlated fetches up to limit visible events of a correlation below before, newest
// first, leaving out skip. next is the before of the following page, 0 when there is none.
// It asks the index for a bounded number of pages, so that a correlation whose events are
// mostly hidden from the caller ends a page early rather than taking long.
func (h *handler) correlated(ctx context.Context, c caller, id string, before uint64, limit int, skip string) (out []linkedEventOut, next uint64, err error) {
	out = []linkedEventOut{}
	for range 4 {
		refs, err := h.opts.Events.Correlated(ctx, id, before, limit)
		if err != nil {
			return nil, 0, err
		}
		for i, ref := range refs {
			before = ref.Position
			if ref.ID == skip {
				continue
			}
			ev, ok, err := fetch(ctx, c, ref)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, ev)
			}
			if len(out) == limit {
				if i == len(refs)-1 && len(refs) < limit {
					return out, 0, nil
				}
				return out, before, nil
			}
		}
		if len(refs) < limit || before <= 1 {
			return out, 0, nil
		}
	}
	return out, before, nil
}

// getCorrelation serves GET /correlations/{id}?limit=&before=: the events of a
// correlation, newest first, with paging.
func (h *handler) getCorrelation(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "correlation"
	q := r.URL.Query()
	if err := checkParams(op, "", q, pLimit, pBefore); err != nil {
		return err
	}
	if _, err := h.eventIndex(op); err != nil {
		return err
	}
	limit, err := parseLimit(op, "", q, h.opts.DefaultReadLimit, h.opts.MaxReadLimit)
	if err != nil {
		return err
	}
	var before uint64
	if s := q.Get(pBefore); s != "" {
		if before, err = strconv.ParseUint(s, 10, 64); err != nil || before == 0 {
			return verity.Errorf(verity.Invalid, op, "before %q: want a log position ≥ 1 (the next of the previous page), or leave it out for the newest", s)
		}
	}
	id := r.PathValue("id")
	evs, next, err := h.correlated(r.Context(), c, id, before, limit, "")
	if err != nil {
		return err
	}
	out := correlationOut{CorrelationID: eventindex.Canonical(id), Events: evs}
	if next > 1 {
		out.Next = strconv.FormatUint(next, 10)
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}
