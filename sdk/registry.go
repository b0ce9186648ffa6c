package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/verity-dev/verity"
)

// Codec turns event values into bytes and back. Implementations must be safe for
// concurrent use.
type Codec interface {
	// ContentType is written as the content type of every event the codec encodes.
	ContentType() string
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, content type application/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return verity.ContentTypeJSON }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// ErrUnknownType is in the chain of the error Decode returns for an event whose type (after
// upcasting) is not registered: errors.Is(err, sdk.ErrUnknownType).
var ErrUnknownType = errors.New("unknown event type")

// maxUpcasts bounds an upcaster chain; registration refuses cycles, so this only guards
// against a chain longer than anyone would write.
const maxUpcasts = 64

// Upcaster turns the data of an event of an old type into the data of the type it was
// registered to produce. It must be pure: it runs on every read of an old event.
type Upcaster func(data []byte) ([]byte, error)

// RegistryOptions shape a Registry. The zero value is the default.
type RegistryOptions struct {
	// Codec encodes and decodes event data (and snapshots); default JSON.
	Codec Codec
	// SkipUnknown makes the SDK's readers (command handlers folding a stream, event
	// handler runners) pass over events whose type is not registered instead of failing
	// on them. Decode itself still returns ErrUnknownType.
	SkipUnknown bool
}

// Registry maps event type names to Go types, encodes values into verity.EventData and
// decodes verity.RecordedEvent back into the registered Go values, upcasting old versions
// on the way. Register every type before use; after that a Registry is safe for
// concurrent use.
type Registry struct {
	codec       Codec
	skipUnknown bool

	mu        sync.RWMutex
	types     map[string]reflect.Type // type name -> Go type (a value type, never a pointer)
	names     map[reflect.Type]string // Go type -> type name
	upcasters map[string]upcast       // old type name -> its upcaster
}

type upcast struct {
	to string
	fn Upcaster
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts RegistryOptions) *Registry {
	if opts.Codec == nil {
		opts.Codec = JSON
	}
	return &Registry{
		codec:       opts.Codec,
		skipUnknown: opts.SkipUnknown,
		types:       map[string]reflect.Type{},
		names:       map[reflect.Type]string{},
		upcasters:   map[string]upcast{},
	}
}

// Codec returns the registry's codec.
func (r *Registry) Codec() Codec { return r.codec }

// Register maps the event type name typeName to the Go type T (a value type such as a
// struct; Encode also accepts a *T). Decode then yields T values for events of that type.
// Errors (Invalid): an empty name, T a pointer or interface type, the name or the type
// registered already, or the name being the old side of an upcaster.
func Register[T any](r *Registry, typeName string) error {
	t := reflect.TypeFor[T]()
	const op = "register"
	if typeName == "" {
		return verity.Errorf(verity.Invalid, op, "event type name for %v is empty", t)
	}
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return verity.Errorf(verity.Invalid, op, "event type %q: register a value type, not %v", typeName, t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.types[typeName]; ok {
		return verity.Errorf(verity.Invalid, op, "event type %q is registered already (to %v)", typeName, old)
	}
	if old, ok := r.names[t]; ok {
		return verity.Errorf(verity.Invalid, op, "Go type %v is registered already (as %q)", t, old)
	}
	if _, ok := r.upcasters[typeName]; ok {
		return verity.Errorf(verity.Invalid, op, "event type %q has an upcaster: it names an old version and cannot be registered as current", typeName)
	}
	r.types[typeName] = t
	r.names[t] = typeName
	return nil
}

// MustRegister is Register that panics on error, for package-level setup.
func MustRegister[T any](r *Registry, typeName string) {
	if err := Register[T](r, typeName); err != nil {
		panic(err)
	}
}

// AddUpcaster makes Decode read events of type from (an old version, e.g.
// "OrderPlaced.v1") as events of type to (e.g. "OrderPlaced.v2" or "OrderPlaced"), their
// data passed through fn. Chains are followed: from v1 to v2 and from v2 to the
// registered current type. The stored events are never changed.
//
// Errors (Invalid): empty names, from == to, from already registered as a current type
// or already upcast, or a chain that would loop.
func (r *Registry) AddUpcaster(from, to string, fn Upcaster) error {
	const op = "upcaster"
	if from == "" || to == "" {
		return verity.Errorf(verity.Invalid, op, "upcaster from %q to %q: both type names are required", from, to)
	}
	if fn == nil {
		return verity.Errorf(verity.Invalid, op, "upcaster from %q to %q: the function is nil", from, to)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[from]; ok {
		return verity.Errorf(verity.Invalid, op, "upcaster from %q: that type is registered as a current type", from)
	}
	if u, ok := r.upcasters[from]; ok {
		return verity.Errorf(verity.Invalid, op, "upcaster from %q exists already (to %q)", from, u.to)
	}
	for next, n := to, 0; n <= len(r.upcasters); n++ {
		if next == from {
			return verity.Errorf(verity.Invalid, op, "upcaster from %q to %q would make a loop", from, to)
		}
		u, ok := r.upcasters[next]
		if !ok {
			break
		}
		next = u.to
	}
	r.upcasters[from] = upcast{to: to, fn: fn}
	return nil
}

// Upcast adds a typed upcaster: events of type from are decoded as Old with the registry's
// codec, turned into New by fn, and encoded again for the next step of the chain. Old is
// only a decoding shape; it is not registered.
func Upcast[Old, New any](r *Registry, from, to string, fn func(Old) (New, error)) error {
	if fn == nil {
		return verity.Errorf(verity.Invalid, "upcaster", "upcaster from %q to %q: the function is nil", from, to)
	}
	return r.AddUpcaster(from, to, func(data []byte) ([]byte, error) {
		var old Old
		if err := r.codec.Unmarshal(data, &old); err != nil {
			return nil, err
		}
		nw, err := fn(old)
		if err != nil {
			return nil, err
		}
		return r.codec.Marshal(nw)
	})
}

// TypeName returns the registered type name of v (a registered T or *T).
func (r *Registry) TypeName(v any) (string, bool) {
	t := reflect.TypeOf(v)
	if t == nil {
		return "", false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if name, ok := r.names[t]; ok {
		return name, true
	}
	if t.Kind() == reflect.Pointer {
		name, ok := r.names[t.Elem()]
		return name, ok
	}
	return "", false
}

// Encode turns a registered value into an event to append, with the given metadata. The
// event's ID is left zero (the store picks one) unless the caller sets it. Errors
// (Invalid): v nil or of an unregistered type, or the codec failing.
func (r *Registry) Encode(v any, md Metadata) (verity.EventData, error) {
	const op = "encode"
	name, ok := r.TypeName(v)
	if !ok {
		return verity.EventData{}, verity.Errorf(verity.Invalid, op, "Go type %T is not registered as an event type (register it with sdk.Register)", v)
	}
	data, err := r.codec.Marshal(v)
	if err != nil {
		return verity.EventData{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("event type %q", name), Err: err}
	}
	meta, err := md.Marshal()
	if err != nil {
		return verity.EventData{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("event type %q: metadata", name), Err: err}
	}
	return verity.EventData{Type: name, ContentType: r.codec.ContentType(), Data: data, Metadata: meta}, nil
}

// Event is a recorded event decoded through a Registry.
type Event struct {
	// Data is the registered Go value (a T, never a *T), after upcasting.
	Data any
	// Type is the registered type name of Data; it differs from Recorded.Type when the
	// event was upcast from an older version.
	Type string
	// Meta is the event's metadata; zero when the metadata is empty or not a JSON object.
	Meta Metadata
	// Recorded is the event as the log holds it (id, stream, revision, position, time).
	Recorded verity.RecordedEvent
	// RetryCount is how many times a consumer group delivered the event before (0
	// outside consumer groups).
	RetryCount int
}

// Decode turns a recorded event into its registered Go value, following upcasters from
// the stored type to the current one. Errors (Invalid): the type not registered (with
// ErrUnknownType in the chain), an upcaster failing, or the data not decoding.
func (r *Registry) Decode(rec verity.RecordedEvent) (Event, error) {
	const op = "decode"
	at := fmt.Sprintf("event %s (%s@%d)", rec.ID, rec.Stream, rec.Revision)
	name, data := rec.Type, rec.Data
	r.mu.RLock()
	t, ok := r.types[name]
	for n := 0; !ok; n++ {
		u, up := r.upcasters[name]
		if !up || n == maxUpcasts {
			break
		}
		r.mu.RUnlock()
		next, err := u.fn(data)
		if err != nil {
			return Event{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("%s: upcasting %q to %q", at, name, u.to), Err: err}
		}
		name, data = u.to, next
		r.mu.RLock()
		t, ok = r.types[name]
	}
	r.mu.RUnlock()
	if !ok {
		msg := fmt.Sprintf("%s: type %q is not registered", at, rec.Type)
		if name != rec.Type {
			msg = fmt.Sprintf("%s: type %q (upcast to %q) is not registered", at, rec.Type, name)
		}
		return Event{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: msg, Err: ErrUnknownType}
	}
	p := reflect.New(t)
	if err := r.codec.Unmarshal(data, p.Interface()); err != nil {
		return Event{}, &verity.Error{Kind: verity.Invalid, Op: op, Message: fmt.Sprintf("%s: type %q", at, name), Err: err}
	}
	md, _ := ParseMetadata(rec.Metadata)
	return Event{Data: p.Elem().Interface(), Type: name, Meta: md, Recorded: rec}, nil
}

// skip reports whether a decode error is one the SDK's readers pass over.
func (r *Registry) skip(err error) bool {
	return r.skipUnknown && errors.Is(err, ErrUnknownType)
}
