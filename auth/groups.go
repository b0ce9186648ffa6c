package auth

import (
	"context"
	"fmt"

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
// A log group's events are not sifted per stream as a log subscription's are: the filter
// check at join is what a consumer is held to, a stream's $acl does not hide its events
// from the group.
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
	return g.g.JoinGroup(ctx, stream, group, opts)
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
