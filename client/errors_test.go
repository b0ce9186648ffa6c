package client_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/protocol/grpcapi"
)

// errStore answers every call with err.
type errStore struct{ err error }

func (s errStore) Append(context.Context, string, verity.ExpectedRevision, ...verity.EventData) (verity.AppendResult, error) {
	return verity.AppendResult{}, s.err
}
func (s errStore) AppendMulti(context.Context, ...verity.StreamAppend) ([]verity.AppendResult, error) {
	return nil, s.err
}
func (s errStore) ReadStream(context.Context, string, verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	return nil, s.err
}
func (s errStore) ReadAll(context.Context, verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	return nil, s.err
}
func (s errStore) Subscribe(context.Context, verity.SubscribeOptions) (verity.Subscription, error) {
	return nil, s.err
}
func (s errStore) GetStreamMetadata(context.Context, string) (verity.StreamMetadataResult, error) {
	return verity.StreamMetadataResult{}, s.err
}
func (s errStore) SetStreamMetadata(context.Context, string, verity.ExpectedRevision, verity.StreamMetadata) (verity.AppendResult, error) {
	return verity.AppendResult{}, s.err
}
func (s errStore) DeleteStream(context.Context, string, verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, s.err
}
func (s errStore) TombstoneStream(context.Context, string, verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, s.err
}
func (s errStore) Close() error { return nil }

// calls are every method of the Store, each returning its error.
var calls = []struct {
	name string
	do   func(ctx context.Context, st verity.Store) error
}{
	{"Append", func(ctx context.Context, st verity.Store) error {
		_, err := st.Append(ctx, "order-1", verity.Any(), verity.EventData{Type: "T", Data: []byte(`{}`)})
		return err
	}},
	{"AppendMulti", func(ctx context.Context, st verity.Store) error {
		_, err := st.AppendMulti(ctx, verity.StreamAppend{Stream: "order-1"})
		return err
	}},
	{"ReadStream", func(ctx context.Context, st verity.Store) error {
		_, err := st.ReadStream(ctx, "order-1", verity.ReadStreamOptions{})
		return err
	}},
	{"ReadAll", func(ctx context.Context, st verity.Store) error {
		_, err := st.ReadAll(ctx, verity.ReadAllOptions{})
		return err
	}},
	{"Subscribe", func(ctx context.Context, st verity.Store) error {
		sub, err := st.Subscribe(ctx, verity.SubscribeOptions{})
		if err == nil {
			sub.Close()
			return errors.New("Subscribe succeeded")
		}
		return err
	}},
	{"GetStreamMetadata", func(ctx context.Context, st verity.Store) error {
		_, err := st.GetStreamMetadata(ctx, "order-1")
		return err
	}},
	{"SetStreamMetadata", func(ctx context.Context, st verity.Store) error {
		_, err := st.SetStreamMetadata(ctx, "order-1", verity.Any(), verity.StreamMetadata{})
		return err
	}},
	{"DeleteStream", func(ctx context.Context, st verity.Store) error {
		_, err := st.DeleteStream(ctx, "order-1", verity.Any())
		return err
	}},
	{"TombstoneStream", func(ctx context.Context, st verity.Store) error {
		_, err := st.TombstoneStream(ctx, "order-1", verity.Any())
		return err
	}},
}

// TestErrorsSurviveTheRoundTrip makes the server's store fail with an error of every kind,
// from every method, and checks that the client returns the same error: every field, the
// cause's text, errors.Is with the kind's sentinel.
func TestErrorsSurviveTheRoundTrip(t *testing.T) {
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	access := &errAccess{}
	s := serveStore(t, e, "", access, grpcapi.Options{}, client.Options{})

	sentinels := map[verity.ErrorKind]error{
		verity.Internal: verity.ErrInternal, verity.Invalid: verity.ErrInvalid, verity.NotFound: verity.ErrNotFound,
		verity.Conflict: verity.ErrConflict, verity.Deleted: verity.ErrDeleted, verity.Unauthenticated: verity.ErrUnauthenticated,
		verity.PermissionDenied: verity.ErrPermissionDenied, verity.Unavailable: verity.ErrUnavailable,
		verity.ResourceExhausted: verity.ErrResourceExhausted,
	}
	type errCase struct {
		name string
		err  error
		want *verity.Error
	}
	var cases []errCase
	for k := verity.Internal; k <= verity.ResourceExhausted; k++ {
		ve := &verity.Error{Kind: k, Op: "op-" + k.String(), Stream: "order-7", Message: fmt.Sprintf("what was wrong with %q", k.String())}
		cases = append(cases, errCase{k.String(), ve, ve})
	}
	wrong := verity.WrongRevision("append", "order-7", verity.Exact(3), verity.StreamState{Exists: true, Revision: 5})
	cases = append(cases,
		errCase{"a wrong expected revision", wrong, wrong},
		errCase{"a wrong expected revision on a stream that does not exist", verity.WrongRevision("append", "order-8", verity.StreamExists(), verity.StreamState{}),
			verity.WrongRevision("append", "order-8", verity.StreamExists(), verity.StreamState{})},
		errCase{"an error with a cause", &verity.Error{Kind: verity.Unavailable, Op: "append", Err: errors.New("disk on fire")},
			&verity.Error{Kind: verity.Unavailable, Op: "append", Err: errors.New("disk on fire")}},
		errCase{"an error of a kind the protocol does not know", &verity.Error{Kind: verity.ErrorKind(200), Op: "future"},
			&verity.Error{Kind: verity.Internal, Op: "future"}},
		errCase{"an error that is no *verity.Error", errors.New("plain failure"),
			&verity.Error{Kind: verity.Internal, Err: errors.New("plain failure")}},
		errCase{"a wrapped *verity.Error", fmt.Errorf("context: %w", verity.Errorf(verity.NotFound, "read", "gone")),
			verity.Errorf(verity.NotFound, "read", "gone")},
	)
	for _, c := range cases {
		for _, call := range calls {
			t.Run(c.name+" from "+call.name+" comes back whole", func(t *testing.T) {
				access.set(c.err)
				got := call.do(t.Context(), s)
				var ve *verity.Error
				if !errors.As(got, &ve) {
					t.Fatalf("got %T %v, want a *verity.Error", got, got)
				}
				if !errors.Is(got, sentinels[c.want.Kind]) {
					t.Errorf("errors.Is(%v, the %v sentinel) is false", got, c.want.Kind)
				}
				if ve.Error() != c.want.Error() {
					t.Errorf("the error reads %q, want %q", ve.Error(), c.want.Error())
				}
				g, w := *ve, *c.want
				if (g.Err == nil) != (w.Err == nil) || g.Err != nil && g.Err.Error() != w.Err.Error() {
					t.Errorf("cause %v, want %v", g.Err, w.Err)
				}
				g.Err, w.Err = nil, nil
				if !reflect.DeepEqual(g, w) {
					t.Errorf("got %#v, want %#v", g, w)
				}
				if c.want.Kind == verity.Conflict && c.want.Actual != nil {
					if ve.Actual == nil || *ve.Actual != *c.want.Actual || ve.Expected == nil || *ve.Expected != *c.want.Expected {
						t.Errorf("Conflict carries expected %v actual %v, want %v and %v", ve.Expected, ve.Actual, *c.want.Expected, *c.want.Actual)
					}
				}
			})
		}
	}
}

// errAccess serves an errStore whose error the test sets.
type errAccess struct {
	adminAccess
	mu  sync.Mutex
	err error
}

func (a *errAccess) set(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

// Store returns a store failing with the error set when each call is made, not when the
// store is taken: an append session takes its store once and keeps it.
func (a *errAccess) Store(auth.Principal) verity.Store   { return liveErrStore{a} }
func (a *errAccess) Groups(auth.Principal) verity.Groups { return nil }

// liveErrStore is an errStore whose error is its errAccess's at the time of each call.
type liveErrStore struct{ a *errAccess }

func (s liveErrStore) now() errStore {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return errStore{s.a.err}
}

func (s liveErrStore) Append(ctx context.Context, stream string, exp verity.ExpectedRevision, evs ...verity.EventData) (verity.AppendResult, error) {
	return s.now().Append(ctx, stream, exp, evs...)
}
func (s liveErrStore) AppendMulti(ctx context.Context, as ...verity.StreamAppend) ([]verity.AppendResult, error) {
	return s.now().AppendMulti(ctx, as...)
}
func (s liveErrStore) ReadStream(ctx context.Context, stream string, o verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	return s.now().ReadStream(ctx, stream, o)
}
func (s liveErrStore) ReadAll(ctx context.Context, o verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	return s.now().ReadAll(ctx, o)
}
func (s liveErrStore) Subscribe(ctx context.Context, o verity.SubscribeOptions) (verity.Subscription, error) {
	return s.now().Subscribe(ctx, o)
}
func (s liveErrStore) GetStreamMetadata(ctx context.Context, stream string) (verity.StreamMetadataResult, error) {
	return s.now().GetStreamMetadata(ctx, stream)
}
func (s liveErrStore) SetStreamMetadata(ctx context.Context, stream string, exp verity.ExpectedRevision, m verity.StreamMetadata) (verity.AppendResult, error) {
	return s.now().SetStreamMetadata(ctx, stream, exp, m)
}
func (s liveErrStore) DeleteStream(ctx context.Context, stream string, exp verity.ExpectedRevision) (verity.DeleteResult, error) {
	return s.now().DeleteStream(ctx, stream, exp)
}
func (s liveErrStore) TombstoneStream(ctx context.Context, stream string, exp verity.ExpectedRevision) (verity.DeleteResult, error) {
	return s.now().TombstoneStream(ctx, stream, exp)
}
func (s liveErrStore) Close() error { return nil }
