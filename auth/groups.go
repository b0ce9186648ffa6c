package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/verity-dev/verity"
)

// GuardGroups returns the persistent subscriptions (consumer groups) of g as p may use
// them. Managing a group, describing it, replaying its parked events and joining it need
// the right to read its source: Read on the stream (see Check) for a stream group, and for
// a log group the right to read the log through the group's filter (see CheckAll). ListGroups
// leaves out the groups whose source p may not read. RestartGroups is for admins. A refused
// call changes nothing and fails as the guarded store's do: Unauthenticated for an
// anonymous caller, PermissionDenied otherwise. In insecure mode every caller is the admin.
//
// A consumer of a log group is also held to every stream's $acl, as a log subscription is:
// an event of a stream the consumer may not read is not delivered to it but parked, with a
// reason naming the user and the stream, where an administrator can see it and replay it
// (to a consumer that may read it). Parking, rather than skipping as a subscription does,
// keeps the event for the group: its other consumers may be allowed to read it.
func (s *Service) GuardGroups(g verity.Groups, p Principal) verity.Groups {
	if s.cfg.Insecure {
		p = Principal{Name: AdminUser, Roles: []string{RoleAdmins}}
	}
	return &guardedGroups{s: s, g: g, p: p}
}

type guardedGroups struct {
	s *Service
	g verity.Groups
	p Principal
}

var _ verity.Groups = (*guardedGroups)(nil)

// checkSource decides whether the caller may read a group's source. A log group's filter
// is the one it was created with, so for every operation but create it is looked up.
func (g *guardedGroups) checkSource(ctx context.Context, op, stream string, filter verity.Filter) error {
	if g.p.IsAdmin() {
		return nil // admins skip even the $acl lookup
	}
	if stream != "" && stream != verity.AllStream {
		return g.s.Check(ctx, op, g.p, Read, stream)
	}
	return g.s.CheckAll(op, g.p, filter)
}

// checkGroup checks an existing group: a log group's filter comes from the group itself. A
// group that does not exist is NotFound only to callers who may read its source; others
// are refused as for any group of that source, so names do not leak.
func (g *guardedGroups) checkGroup(ctx context.Context, op, stream, group string) error {
	if g.p.IsAdmin() {
		return nil
	}
	var filter verity.Filter
	if stream == "" || stream == verity.AllStream {
		info, err := g.g.GetGroup(ctx, stream, group)
		switch {
		case err == nil:
			filter = info.Filter
		case verity.KindOf(err) != verity.NotFound:
			return err
		}
	}
	return g.checkSource(ctx, op, stream, filter)
}

func (g *guardedGroups) CreateGroup(ctx context.Context, spec verity.GroupSpec) error {
	if err := g.checkSource(ctx, "create group", spec.Stream, spec.Filter); err != nil {
		return err
	}
	return g.g.CreateGroup(ctx, spec)
}

// UpdateGroup is checked against the group's stored filter: the filter of spec is ignored
// by the update, so it cannot widen what the caller may read.
func (g *guardedGroups) UpdateGroup(ctx context.Context, spec verity.GroupSpec) error {
	if err := g.checkGroup(ctx, "update group", spec.Stream, spec.Group); err != nil {
		return err
	}
	return g.g.UpdateGroup(ctx, spec)
}

func (g *guardedGroups) DeleteGroup(ctx context.Context, stream, group string) error {
	if err := g.checkGroup(ctx, "delete group", stream, group); err != nil {
		return err
	}
	return g.g.DeleteGroup(ctx, stream, group)
}

func (g *guardedGroups) GetGroup(ctx context.Context, stream, group string) (verity.GroupInfo, error) {
	if err := g.checkGroup(ctx, "get group", stream, group); err != nil {
		return verity.GroupInfo{}, err
	}
	return g.g.GetGroup(ctx, stream, group)
}

// ListGroups drops the groups whose source the caller may not read, without counting them
// as refusals: listing is not an attempt to read them.
func (g *guardedGroups) ListGroups(ctx context.Context, stream string) ([]verity.GroupInfo, error) {
	all, err := g.g.ListGroups(ctx, stream)
	if err != nil || g.p.IsAdmin() {
		return all, err
	}
	out := all[:0:0]
	for _, info := range all {
		ok, err := g.readable(ctx, info.Stream, info.Filter)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, info)
		}
	}
	return out, nil
}

// readable is checkSource's decision without the refusal.
func (g *guardedGroups) readable(ctx context.Context, stream string, filter verity.Filter) (bool, error) {
	if stream != "" && stream != verity.AllStream {
		a, target := metadataTarget(Read, stream)
		return g.s.allowed(ctx, g.p, a, target)
	}
	return !g.p.Anonymous() && g.s.covers(g.p, filter), nil
}

func (g *guardedGroups) ReplayParked(ctx context.Context, stream, group string, opts verity.ReplayParkedOptions) error {
	if err := g.checkGroup(ctx, "replay parked", stream, group); err != nil {
		return err
	}
	return g.g.ReplayParked(ctx, stream, group, opts)
}

func (g *guardedGroups) JoinGroup(ctx context.Context, stream, group string, opts verity.JoinOptions) (verity.GroupConsumer, error) {
	if err := g.checkGroup(ctx, "join group", stream, group); err != nil {
		return nil, err
	}
	c, err := g.g.JoinGroup(ctx, stream, group, opts)
	if err != nil || (stream != "" && stream != verity.AllStream) {
		return c, err
	}
	sift := g.s.newSifter(g.p)
	if sift == nil {
		return c, nil
	}
	return &siftedConsumer{GroupConsumer: c, user: g.p.Name, sift: sift, now: g.s.cfg.Now, reset: g.s.cfg.Now()}, nil
}

// siftedConsumer passes on a log group's events whose stream its user may read, and parks
// the others (see GuardGroups).
type siftedConsumer struct {
	verity.GroupConsumer
	user string

	mu    sync.Mutex // Recv may be called from more than one goroutine
	sift  *sifter
	now   func() time.Time
	reset time.Time

	// held is an event Recv took but neither passed on nor parked, its ctx having ended
	// (or the $acl lookup failed) first: in flight with this consumer, it would hold a
	// place of MaxInFlight until MessageTimeout, or for ever. The next Recv starts with it.
	// Only Recv, never called concurrently with itself, touches it.
	held *verity.GroupMessage
}

func (c *siftedConsumer) Recv(ctx context.Context) (verity.GroupMessage, error) {
	for {
		var m verity.GroupMessage
		if c.held != nil {
			m, c.held = *c.held, nil
		} else {
			var err error
			if m, err = c.GroupConsumer.Recv(ctx); err != nil {
				return m, err
			}
		}
		ok, err := c.visible(ctx, m.Event.Stream)
		if err != nil {
			c.held = &m
			return verity.GroupMessage{}, err
		}
		if ok {
			return m, nil
		}
		reason := fmt.Sprintf("user %q may not read stream %q (the access rules or its $acl): parked instead of delivered to that consumer", c.user, m.Event.Stream)
		if err := c.GroupConsumer.Nack(ctx, verity.NackPark, reason, m.Event.ID); err != nil {
			c.held = &m
			return verity.GroupMessage{}, err
		}
	}
}

func (c *siftedConsumer) visible(ctx context.Context, stream string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.reset) >= sifterTTL || now.Before(c.reset) {
		c.sift.reset()
		c.reset = now
	}
	return c.sift.visible(ctx, stream)
}

// RestartGroups is for admins: it disconnects every consumer of every group. A refusal is
// not counted in Denied, as the user management calls' are not: it concerns no stream.
func (g *guardedGroups) RestartGroups(ctx context.Context) error {
	const op = "restart groups"
	if !g.p.IsAdmin() {
		if g.p.Anonymous() {
			return &verity.Error{Kind: verity.Unauthenticated, Op: op, Message: "authentication required: only admins restart the persistent subscriptions"}
		}
		return &verity.Error{Kind: verity.PermissionDenied, Op: op,
			Message: fmt.Sprintf("user %q is not an admin: only admins restart the persistent subscriptions", g.p.Name)}
	}
	return g.g.RestartGroups(ctx)
}
