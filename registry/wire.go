package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/verity-dev/verity"
)

// The JSON of the HTTP API (http.go) and its client (client.go). Durations are written as Go
// duration strings ("10s") so that a person reading a curl answer understands them.

// MarshalText writes the kind's name ("snapshot", "registered", "removed",
// "health-changed"), as the API's watch events are named.
func (k ChangeKind) MarshalText() ([]byte, error) {
	if k < ChangeSnapshot || k > ChangeHealthChanged {
		return nil, fmt.Errorf("registry: unknown change kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind's name; an unknown name is an error.
func (k *ChangeKind) UnmarshalText(b []byte) error {
	for c := ChangeSnapshot; c <= ChangeHealthChanged; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("registry: unknown change kind %q", b)
}

type leaseJSON struct {
	InstanceID string `json:"instanceId"`
	TTL        string `json:"ttl"`
}

// MarshalJSON writes {"instanceId": "...", "ttl": "10s"}.
func (l Lease) MarshalJSON() ([]byte, error) {
	return json.Marshal(leaseJSON{InstanceID: l.InstanceID, TTL: l.TTL.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Lease) UnmarshalJSON(b []byte) error {
	var j leaseJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(j.TTL)
	if err != nil {
		return fmt.Errorf("lease ttl %q: %v", j.TTL, err)
	}
	*l = Lease{InstanceID: j.InstanceID, TTL: ttl}
	return nil
}

// healthJSON is the body of PUT /registry/instances/{id}/health.
type healthJSON struct {
	Health Health `json:"health"`
	Reason string `json:"reason,omitempty"`
}

// ServiceSummary is one service of GET /registry/services: how many live instances it has,
// and how many of them are healthy.
type ServiceSummary struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	Healthy   int    `json:"healthy"`
}

// summarize counts the instances of each service; ins is ordered by service.
func summarize(ins []Instance) []ServiceSummary {
	out := []ServiceSummary{}
	for _, in := range ins {
		if len(out) == 0 || out[len(out)-1].Name != in.Service {
			out = append(out, ServiceSummary{Name: in.Service})
		}
		s := &out[len(out)-1]
		s.Instances++
		if in.Health == Healthy {
			s.Healthy++
		}
	}
	return out
}

// errorBody is the JSON of every error answer, as in the rest of Verity's HTTP API:
// {"error": {"kind": "not_found", "message": "...", "op": "...", "stream": "..."}}.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Op      string `json:"op,omitempty"`
	Stream  string `json:"stream,omitempty"`
}

const internalMessage = "internal error; the server log has the details"

// errorJSONOf describes err for a client. Internal errors are described only as such: their
// detail is for the server's log.
func errorJSONOf(err error) errorJSON {
	var e *verity.Error
	if !errors.As(err, &e) {
		if isContextErr(err) {
			return errorJSON{Kind: verity.Unavailable.String(), Message: "the request ended before it was answered: " + err.Error()}
		}
		return errorJSON{Kind: verity.Internal.String(), Message: internalMessage}
	}
	if verity.ParseErrorKind(e.Kind.String()) == verity.Internal {
		return errorJSON{Kind: verity.Internal.String(), Message: internalMessage}
	}
	return errorJSON{Kind: e.Kind.String(), Message: e.Error(), Op: e.Op, Stream: e.Stream}
}

// toError turns an error answer back into the *verity.Error it describes, so that
// verity.KindOf works on the client as on the server.
func (j errorJSON) toError() *verity.Error {
	e := &verity.Error{Kind: verity.ParseErrorKind(j.Kind), Op: j.Op, Stream: j.Stream}
	// The message is the server's whole Error(): strip what Op and Stream add again.
	if prefix := (&verity.Error{Op: j.Op, Stream: j.Stream}).Error(); j.Op != "" || j.Stream != "" {
		e.Message = strings.TrimPrefix(j.Message, prefix+": ")
	} else {
		e.Message = j.Message
	}
	return e
}
