package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/internal/httpjson"
)

// withStream names the stream on an error that does not name one yet.
func withStream(err error, stream string) error {
	var e *verity.Error
	if errors.As(err, &e) && e.Stream == "" {
		e.Stream = stream
	}
	return err
}

// append serves POST /streams/{stream}.
func (h *handler) append(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "append"
	stream := r.PathValue("stream")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := decodeAppend(body)
	if err != nil {
		return withStream(err, stream)
	}
	exp, err := expectedOf(op, stream, r, req.Expected)
	if err != nil {
		return err
	}
	res, err := c.store.Append(r.Context(), stream, exp, req.Events...)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusCreated, appendResultOut{Revision: res.Revision, Position: res.Position})
	return nil
}

// appendMulti serves POST /streams: an atomic append to several streams.
func (h *handler) appendMulti(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "append"
	if err := checkParams(op, "", r.URL.Query()); err != nil {
		return err
	}
	if len(r.Header.Values("Expected-Revision")) > 0 {
		return verity.Errorf(verity.Invalid, op, `an atomic append takes each stream's expected revision in its entry's "expectedRevision", not in the Expected-Revision header`)
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	appends, err := decodeMultiAppend(body)
	if err != nil {
		return err
	}
	res, err := c.store.AppendMulti(r.Context(), appends...)
	if err != nil {
		return err
	}
	out := struct {
		Results []appendResultOut `json:"results"`
	}{Results: make([]appendResultOut, len(res))}
	for i, a := range res {
		out.Results[i] = appendResultOut{Stream: appends[i].Stream, Revision: a.Revision, Position: a.Position}
	}
	httpjson.Write(w, http.StatusCreated, out)
	return nil
}

// read serves GET /streams/{stream}, and GET /streams/$all; with Accept: text/event-stream
// it subscribes instead.
func (h *handler) read(w http.ResponseWriter, r *http.Request, c caller) error {
	if wantsEventStream(r) {
		return h.subscribe(w, r, c)
	}
	stream := r.PathValue("stream")
	if stream == verity.AllStream {
		return h.readAll(w, r, c)
	}
	const op = "read"
	q := r.URL.Query()
	if err := checkParams(op, stream, q, pFrom, pDirection, pLimit); err != nil {
		return err
	}
	dir, err := parseDirection(op, stream, q)
	if err != nil {
		return err
	}
	from, err := parseFrom(op, stream, q)
	if err != nil {
		return err
	}
	limit, err := parseLimit(op, stream, q, h.opts.DefaultReadLimit, h.opts.MaxReadLimit)
	if err != nil {
		return err
	}
	opts := verity.ReadStreamOptions{Direction: dir, From: from.n, Limit: limit,
		FromEnd: from.atEnd || (!from.set && dir == verity.Backwards)}
	events, err := c.store.ReadStream(r.Context(), stream, opts)
	if err != nil {
		return err
	}
	page := readPage{Events: encodeEvents(events), End: len(events) < limit}
	if n := len(events); n > 0 {
		last := events[n-1].Revision
		switch {
		case dir == verity.Forwards:
			page.Next = nextURL(r, q, last+1)
		case !page.End && last > 0:
			page.Next = nextURL(r, q, last-1)
		}
	} else if dir == verity.Forwards {
		page.Next = r.URL.RequestURI()
	}
	writePage(w, page)
	return nil
}

// readAll serves GET /streams/$all.
func (h *handler) readAll(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "read $all"
	q := r.URL.Query()
	allowed := append([]string{pFrom, pDirection, pLimit, pFromTime}, filterParams...)
	if err := checkParams(op, "", q, allowed...); err != nil {
		return err
	}
	dir, err := parseDirection(op, "", q)
	if err != nil {
		return err
	}
	from, err := parseFrom(op, "", q)
	if err != nil {
		return err
	}
	fromTime, err := parseFromTime(op, q)
	if err != nil {
		return err
	}
	if from.set && !fromTime.IsZero() {
		return verity.Errorf(verity.Invalid, op, "give from or fromTime, not both")
	}
	limit, err := parseLimit(op, "", q, h.opts.DefaultReadLimit, h.opts.MaxReadLimit)
	if err != nil {
		return err
	}
	filter, err := parseFilter(op, q)
	if err != nil {
		return err
	}
	opts := verity.ReadAllOptions{Direction: dir, From: from.n, FromTime: fromTime, Limit: limit, Filter: filter,
		FromEnd: from.atEnd || (!from.set && fromTime.IsZero() && dir == verity.Backwards)}
	events, err := c.store.ReadAll(r.Context(), opts)
	if err != nil {
		return err
	}
	page := readPage{Events: encodeEvents(events), End: len(events) < limit}
	if n := len(events); n > 0 {
		last := events[n-1].Position
		switch {
		case dir == verity.Forwards:
			page.Next = nextURL(r, q, last+1)
		case !page.End && last > 1:
			page.Next = nextURL(r, q, last-1)
		}
	} else if dir == verity.Forwards {
		page.Next = r.URL.RequestURI()
	}
	writePage(w, page)
	return nil
}

// nextURL is the request's URL reading on from "from", its other parameters kept.
func nextURL(r *http.Request, q url.Values, from uint64) string {
	next := url.Values{}
	for k, v := range q {
		next[k] = v
	}
	next.Del(pFromTime)
	next.Set(pFrom, strconv.FormatUint(from, 10))
	return r.URL.EscapedPath() + "?" + next.Encode()
}

func writePage(w http.ResponseWriter, page readPage) {
	if page.Next != "" {
		w.Header().Set("Link", "<"+page.Next+`>; rel="next"`)
	}
	httpjson.Write(w, http.StatusOK, page)
}

// delete serves DELETE /streams/{stream}: a soft delete, or with ?tombstone=true a
// tombstone.
func (h *handler) delete(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "delete"
	stream := r.PathValue("stream")
	q := r.URL.Query()
	if err := checkParams(op, stream, q, pTombstone); err != nil {
		return err
	}
	tombstone := false
	if q.Has(pTombstone) {
		s := q.Get(pTombstone)
		b, err := strconv.ParseBool(s)
		if err != nil {
			return &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: "tombstone " + strconv.Quote(s) + ": want true or false"}
		}
		tombstone = b
	}
	exp, err := expectedOf(op, stream, r, nil)
	if err != nil {
		return err
	}
	var res verity.DeleteResult
	if tombstone {
		res, err = c.store.TombstoneStream(r.Context(), stream, exp)
	} else {
		res, err = c.store.DeleteStream(r.Context(), stream, exp)
	}
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, deleteResultOut{Position: res.Position})
	return nil
}

// getMetadata serves GET /streams/{stream}/metadata.
func (h *handler) getMetadata(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "get metadata"
	stream := r.PathValue("stream")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	res, err := c.store.GetStreamMetadata(r.Context(), stream)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, metadataOut{Stream: stream, Revision: res.Revision, Metadata: res.Metadata})
	return nil
}

// setMetadata serves PUT /streams/{stream}/metadata.
func (h *handler) setMetadata(w http.ResponseWriter, r *http.Request, c caller) error {
	const op = "set metadata"
	stream := r.PathValue("stream")
	if err := checkParams(op, stream, r.URL.Query()); err != nil {
		return err
	}
	body, err := readBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	meta, err := decodeMetadata(body)
	if err != nil {
		return withStream(err, stream)
	}
	exp, err := expectedOf(op, stream, r, nil)
	if err != nil {
		return err
	}
	res, err := c.store.SetStreamMetadata(r.Context(), stream, exp, meta)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, appendResultOut{Revision: res.Revision, Position: res.Position})
	return nil
}
