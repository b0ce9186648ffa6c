package httpapi

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verity-dev/verity"
)

// Query parameters, as docs/http-api.md lists them.
const (
	pFrom            = "from"
	pDirection       = "direction"
	pLimit           = "limit"
	pFromTime        = "fromTime"
	pCategory        = "category"
	pStreamPrefix    = "streamPrefix"
	pStreamRegex     = "streamRegex"
	pEventType       = "eventType"
	pEventTypePrefix = "eventTypePrefix"
	pEventTypeRegex  = "eventTypeRegex"
	pExcludeSystem   = "excludeSystem"
	pCheckpointEvery = "checkpointEvery"
	pTombstone       = "tombstone"
)

// repeatable parameters are OR lists; every other one may be given once.
var repeatable = []string{pCategory, pStreamPrefix, pEventType, pEventTypePrefix}

var filterParams = []string{pCategory, pStreamPrefix, pStreamRegex, pEventType, pEventTypePrefix, pEventTypeRegex, pExcludeSystem}

// checkParams rejects parameters not in allowed and single-valued ones given twice, so a
// misspelt filter fails loudly instead of silently selecting everything.
func checkParams(op, stream string, q url.Values, allowed ...string) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same parameter whatever the map's order
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			msg := fmt.Sprintf("unknown query parameter %q; this endpoint takes %s", k, strings.Join(allowed, ", "))
			if len(allowed) == 0 {
				msg = fmt.Sprintf("unknown query parameter %q; this endpoint takes none", k)
			}
			if slices.Contains(filterParams, k) || k == pFromTime {
				msg = fmt.Sprintf("query parameter %q applies to $all only", k)
			}
			return &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: msg}
		}
		if len(q[k]) > 1 && !slices.Contains(repeatable, k) {
			return &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: fmt.Sprintf("query parameter %q is given %d times; give it once", k, len(q[k]))}
		}
	}
	return nil
}

// fromParam is a parsed "from": a number, "start" or "end".
type fromParam struct {
	set   bool
	n     uint64
	atEnd bool
}

func parseFrom(op, stream string, q url.Values) (fromParam, error) {
	if !q.Has(pFrom) {
		return fromParam{}, nil
	}
	switch s := q.Get(pFrom); s {
	case "start":
		return fromParam{set: true}, nil
	case "end":
		return fromParam{set: true, atEnd: true}, nil
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fromParam{}, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream,
				Message: fmt.Sprintf("from %q: want start, end or a whole number ≥ 0 (a revision for a stream, a position for $all)", s)}
		}
		return fromParam{set: true, n: n}, nil
	}
}

func parseDirection(op, stream string, q url.Values) (verity.Direction, error) {
	switch s := q.Get(pDirection); s {
	case "", "forwards":
		return verity.Forwards, nil
	case "backwards":
		return verity.Backwards, nil
	default:
		return 0, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: fmt.Sprintf("direction %q: want forwards or backwards", s)}
	}
}

func parseLimit(op, stream string, q url.Values, def, maxLimit int) (int, error) {
	if !q.Has(pLimit) {
		return def, nil
	}
	s := q.Get(pLimit)
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, &verity.Error{Kind: verity.Invalid, Op: op, Stream: stream, Message: fmt.Sprintf("limit %q: want a whole number from 1 to %d", s, maxLimit)}
	}
	return n, nil
}

func parseFromTime(op string, q url.Values) (time.Time, error) {
	if !q.Has(pFromTime) {
		return time.Time{}, nil
	}
	s := q.Get(pFromTime)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, verity.Errorf(verity.Invalid, op, "fromTime %q: want an RFC 3339 time such as 2030-01-02T03:04:05Z", s)
	}
	return t, nil
}

// parseFilter maps the filter parameters of a $all read or subscription onto a
// verity.Filter and compiles it, so that a bad regular expression is reported here.
func parseFilter(op string, q url.Values) (verity.Filter, error) {
	var f verity.Filter
	list := func(name string) ([]string, error) {
		vs := q[name]
		for _, v := range vs {
			if v == "" {
				return nil, verity.Errorf(verity.Invalid, op, "query parameter %s is empty; give a value or leave it out", name)
			}
		}
		return vs, nil
	}
	var err error
	if f.Categories, err = list(pCategory); err != nil {
		return f, err
	}
	if f.StreamPrefixes, err = list(pStreamPrefix); err != nil {
		return f, err
	}
	if f.EventTypes, err = list(pEventType); err != nil {
		return f, err
	}
	if f.EventTypePrefixes, err = list(pEventTypePrefix); err != nil {
		return f, err
	}
	f.StreamRegexp = q.Get(pStreamRegex)
	f.EventTypeRegexp = q.Get(pEventTypeRegex)
	if q.Has(pStreamRegex) && f.StreamRegexp == "" || q.Has(pEventTypeRegex) && f.EventTypeRegexp == "" {
		return f, verity.Errorf(verity.Invalid, op, "a regular expression parameter is empty; give a value or leave it out")
	}
	if q.Has(pExcludeSystem) {
		s := q.Get(pExcludeSystem)
		b, err := strconv.ParseBool(s)
		if err != nil {
			return f, verity.Errorf(verity.Invalid, op, "excludeSystem %q: want true or false", s)
		}
		f.ExcludeSystemEvents = b
	}
	if _, err := f.Compile(); err != nil {
		return f, err
	}
	return f, nil
}

func parseCheckpointEvery(op string, q url.Values) (int, error) {
	if !q.Has(pCheckpointEvery) {
		return 0, nil
	}
	s := q.Get(pCheckpointEvery)
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, verity.Errorf(verity.Invalid, op, "checkpointEvery %q: want a whole number ≥ 1", s)
	}
	return n, nil
}
