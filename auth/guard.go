package auth

import (
	"context"
	"time"

	"github.com/verity-dev/verity"
)

// Store returns the store as p may use it: every call is checked (see Check and CheckAll)
// before it reaches the underlying store, and a refused call changes nothing. Reads of the
// log by non-admins return only events of streams p may read. A stream subscription is
// checked when it starts; a log subscription sifts every event, and an ACL change reaches it
// within a second. Close is a no-op: the underlying store is shared and stays open. In
// insecure mode every caller is the admin.
func (s *Service) Store(p Principal) verity.Store {
	if s.cfg.Insecure {
		p = Principal{Name: AdminUser, Roles: []string{RoleAdmins}}
	}
	return &guardedStore{s: s, p: p}
}

type guardedStore struct {
	s *Service
	p Principal
}

var _ verity.Store = (*guardedStore)(nil)

func (g *guardedStore) Append(ctx context.Context, stream string, expected verity.ExpectedRevision, events ...verity.EventData) (verity.AppendResult, error) {
	if err := g.s.Check(ctx, "append", g.p, Write, stream); err != nil {
		return verity.AppendResult{}, err
	}
	return g.s.store.Append(ctx, stream, expected, events...)
}

// AppendMulti checks every stream before anything is written: one refusal and the whole
// append is refused.
func (g *guardedStore) AppendMulti(ctx context.Context, appends ...verity.StreamAppend) ([]verity.AppendResult, error) {
	for _, a := range appends {
		if err := g.s.Check(ctx, "append multi", g.p, Write, a.Stream); err != nil {
			return nil, err
		}
	}
	return g.s.store.AppendMulti(ctx, appends...)
}

func (g *guardedStore) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	if err := g.s.Check(ctx, "read stream", g.p, Read, stream); err != nil {
		return nil, err
	}
	return g.s.store.ReadStream(ctx, stream, opts)
}

// ReadAll, for a non-admin, reads on past events of streams the caller may not read until
// it has some to return or reaches the end, so that an empty result still means the end.
func (g *guardedStore) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	const op = "read all"
	if err := g.s.CheckAll(op, g.p, opts.Filter); err != nil {
		return nil, err
	}
	sift := g.s.newSifter(g.p)
	if sift == nil {
		return g.s.store.ReadAll(ctx, opts)
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = verity.DefaultReadLimit
	}
	var out []verity.RecordedEvent
	for {
		opts.Limit = limit - len(out)
		evs, err := g.s.store.ReadAll(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			ok, err := sift.visible(ctx, e.Stream)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, e)
			}
		}
		if len(evs) == 0 || len(out) >= limit {
			return out, nil
		}
		last := evs[len(evs)-1].Position
		opts.FromEnd, opts.FromTime = false, time.Time{}
		if opts.Direction == verity.Backwards {
			if last <= 1 {
				return out, nil
			}
			opts.From = last - 1
		} else {
			opts.From = last + 1
		}
	}
}

func (g *guardedStore) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	const op = "subscribe"
	if opts.Stream != "" && opts.Stream != verity.AllStream {
		if err := g.s.Check(ctx, op, g.p, Read, opts.Stream); err != nil {
			return nil, err
		}
		return g.s.store.Subscribe(ctx, opts)
	}
	if err := g.s.CheckAll(op, g.p, opts.Filter); err != nil {
		return nil, err
	}
	sub, err := g.s.store.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	sift := g.s.newSifter(g.p)
	if sift == nil {
		return sub, nil
	}
	return &siftedSub{Subscription: sub, sift: sift, now: g.s.cfg.Now, reset: g.s.cfg.Now()}, nil
}

// siftedSub passes on a log subscription's messages, turning events of streams the caller
// may not read into checkpoints at their position, so the consumer can still resume there.
type siftedSub struct {
	verity.Subscription
	sift  *sifter
	now   func() time.Time
	reset time.Time
}

// sifterTTL is how long a log subscription trusts its answers about a stream's $acl.
const sifterTTL = time.Second

func (s *siftedSub) Recv(ctx context.Context) (verity.SubscriptionMessage, error) {
	m, err := s.Subscription.Recv(ctx)
	if err != nil || m.Kind != verity.MessageEvent {
		return m, err
	}
	if now := s.now(); now.Sub(s.reset) >= sifterTTL || now.Before(s.reset) {
		s.sift.reset()
		s.reset = now
	}
	ok, err := s.sift.visible(ctx, m.Event.Stream)
	if err != nil {
		return verity.SubscriptionMessage{}, err
	}
	if !ok {
		return verity.SubscriptionMessage{Kind: verity.MessageCheckpoint, Position: m.Event.Position}, nil
	}
	return m, nil
}

func (g *guardedStore) GetStreamMetadata(ctx context.Context, stream string) (verity.StreamMetadataResult, error) {
	if err := g.s.Check(ctx, "get metadata", g.p, MetadataRead, stream); err != nil {
		return verity.StreamMetadataResult{}, err
	}
	return g.s.store.GetStreamMetadata(ctx, stream)
}

func (g *guardedStore) SetStreamMetadata(ctx context.Context, stream string, expected verity.ExpectedRevision, meta verity.StreamMetadata) (verity.AppendResult, error) {
	if err := g.s.Check(ctx, "set metadata", g.p, MetadataWrite, stream); err != nil {
		return verity.AppendResult{}, err
	}
	return g.s.store.SetStreamMetadata(ctx, stream, expected, meta)
}

func (g *guardedStore) DeleteStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	if err := g.s.Check(ctx, "delete", g.p, Delete, stream); err != nil {
		return verity.DeleteResult{}, err
	}
	return g.s.store.DeleteStream(ctx, stream, expected)
}

func (g *guardedStore) TombstoneStream(ctx context.Context, stream string, expected verity.ExpectedRevision) (verity.DeleteResult, error) {
	if err := g.s.Check(ctx, "tombstone", g.p, Delete, stream); err != nil {
		return verity.DeleteResult{}, err
	}
	return g.s.store.TombstoneStream(ctx, stream, expected)
}

// Close does nothing: the underlying store is shared by every caller's guarded store.
func (g *guardedStore) Close() error { return nil }
