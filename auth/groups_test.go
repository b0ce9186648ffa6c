package auth

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// recordingGroups is a verity.Groups that records the calls that reach it and describes the
// groups it was given.
type recordingGroups struct {
	infos []verity.GroupInfo

	mu    sync.Mutex
	calls []string
}

func (r *recordingGroups) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recordingGroups) called() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recordingGroups) find(stream, group string) (verity.GroupInfo, error) {
	for _, g := range r.infos {
		if g.Stream == stream && g.Group == group {
			return g, nil
		}
	}
	return verity.GroupInfo{}, verity.Errorf(verity.NotFound, "group", "no group %q on %q", group, stream)
}

func (r *recordingGroups) CreateGroup(_ context.Context, spec verity.GroupSpec) error {
	r.record("create " + spec.Stream)
	return nil
}
func (r *recordingGroups) UpdateGroup(_ context.Context, spec verity.GroupSpec) error {
	r.record("update " + spec.Stream)
	return nil
}
func (r *recordingGroups) DeleteGroup(_ context.Context, stream, _ string) error {
	r.record("delete " + stream)
	return nil
}
func (r *recordingGroups) GetGroup(_ context.Context, stream, group string) (verity.GroupInfo, error) {
	return r.find(stream, group) // also used by the guard to learn a log group's filter
}
func (r *recordingGroups) ListGroups(_ context.Context, stream string) ([]verity.GroupInfo, error) {
	var out []verity.GroupInfo
	for _, g := range r.infos {
		if stream == "" || g.Stream == stream {
			out = append(out, g)
		}
	}
	return out, nil
}
func (r *recordingGroups) ReplayParked(_ context.Context, stream, _ string, _ verity.ReplayParkedOptions) error {
	r.record("replay " + stream)
	return nil
}
func (r *recordingGroups) JoinGroup(_ context.Context, stream, _ string, _ verity.JoinOptions) (verity.GroupConsumer, error) {
	r.record("join " + stream)
	return nopConsumer{}, nil
}
func (r *recordingGroups) RestartGroups(context.Context) error {
	r.record("restart")
	return nil
}

type nopConsumer struct{}

func (nopConsumer) Recv(ctx context.Context) (verity.GroupMessage, error) {
	<-ctx.Done()
	return verity.GroupMessage{}, ctx.Err()
}
func (nopConsumer) Ack(context.Context, ...uuid.UUID) error                             { return nil }
func (nopConsumer) Nack(context.Context, verity.NackAction, string, ...uuid.UUID) error { return nil }
func (nopConsumer) Close() error                                                        { return nil }

// groupFixture: the decision fixture's streams and rules, and groups on order-7, secret-1,
// $all (whole) and $all filtered to the order category.
func groupFixture(t *testing.T) (*Service, *recordingGroups) {
	t.Helper()
	_, svc := decisionFixture(t, Config{DefaultAccess: []Action{Read, Write, Delete, MetadataRead, MetadataWrite}})
	return svc, &recordingGroups{infos: []verity.GroupInfo{
		{Stream: "order-7", Group: "g"},
		{Stream: "secret-1", Group: "g"},
		{Stream: verity.AllStream, Group: "everything"},
		{Stream: verity.AllStream, Group: "orders", Filter: verity.Filter{Categories: []string{"order"}}},
	}}
}

func TestGuardGroupsChecksReadOnTheSource(t *testing.T) {
	const ok = verity.ErrorKind(255)
	cases := []struct {
		name   string
		p      Principal
		stream string
		group  string
		want   verity.ErrorKind
	}{
		{"an admin may use a group on any stream", admin, "secret-1", "g", ok},
		{"an admin may use a group on the whole log", admin, verity.AllStream, "everything", ok},
		{"a user may use a group on a stream they may read", bob, "order-7", "g", ok},
		{"a user may not use a group on a stream whose acl hides it", bob, "secret-1", "g", verity.PermissionDenied},
		{"a user named in the acl may use that group", carol, "secret-1", "g", ok},
		{"a user may not use a group on the whole log", bob, verity.AllStream, "everything", verity.PermissionDenied},
		{"a rule-limited user may use a log group filtered to their category", orders, verity.AllStream, "orders", ok},
		{"a rule-limited user may not use a group on a stream outside their rules", orders, "secret-1", "g", verity.PermissionDenied},
		{"an anonymous caller must authenticate", anon, "order-7", "g", verity.Unauthenticated},
		{"an anonymous caller must authenticate for the log", anon, verity.AllStream, "orders", verity.Unauthenticated},
		{"a missing group is NotFound to whoever may read its source", bob, "order-7", "missing", verity.NotFound},
		{"a missing group on an unreadable source is refused, not NotFound", bob, "secret-1", "missing", verity.PermissionDenied},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc, rec := groupFixture(t)
			g := svc.GuardGroups(rec, c.p)
			ops := map[string]func() error{
				"update": func() error {
					return g.UpdateGroup(ctx, verity.GroupSpec{Stream: c.stream, Group: c.group})
				},
				"delete": func() error { return g.DeleteGroup(ctx, c.stream, c.group) },
				"get": func() error {
					_, err := g.GetGroup(ctx, c.stream, c.group)
					return err
				},
				"replay": func() error { return g.ReplayParked(ctx, c.stream, c.group, verity.ReplayParkedOptions{}) },
				"join": func() error {
					cons, err := g.JoinGroup(ctx, c.stream, c.group, verity.JoinOptions{})
					if err == nil {
						cons.Close()
					}
					return err
				},
			}
			for name, call := range ops {
				err := call()
				if c.want == ok || (c.want == verity.NotFound && name == "get") {
					if c.want == ok && err != nil {
						t.Errorf("%s: %v, want success", name, err)
					}
					if c.want == verity.NotFound && verity.KindOf(err) != verity.NotFound {
						t.Errorf("%s: %v, want not found", name, err)
					}
					continue
				}
				if c.want == verity.NotFound {
					continue // the recording fake succeeds on what is not a get
				}
				if verity.KindOf(err) != c.want {
					t.Errorf("%s: got %v, want %s", name, err, c.want)
				}
			}
			if c.want != ok && c.want != verity.NotFound && len(rec.called()) != 0 {
				t.Errorf("refused calls reached the groups: %v", rec.called())
			}
		})
	}
}

func TestGuardGroupsCreateChecksTheSpecFilter(t *testing.T) {
	ctx := context.Background()
	svc, rec := groupFixture(t)
	g := svc.GuardGroups(rec, orders)
	wantKind(t, g.CreateGroup(ctx, verity.GroupSpec{Stream: verity.AllStream, Group: "x"}), verity.PermissionDenied)
	wantKind(t, g.CreateGroup(ctx, verity.GroupSpec{Stream: "invoice-1", Group: "x"}), verity.PermissionDenied)
	if got := rec.called(); len(got) != 0 {
		t.Fatalf("refused creates reached the groups: %v", got)
	}
	mustNil(t, g.CreateGroup(ctx, verity.GroupSpec{Stream: verity.AllStream, Group: "x", Filter: verity.Filter{Categories: []string{"customer"}}}))
	mustNil(t, g.CreateGroup(ctx, verity.GroupSpec{Stream: "order-1", Group: "x"}))
	if got, want := rec.called(), []string{"create $all", "create order-1"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestGuardGroupsUpdateIsCheckedAgainstTheStoredFilter(t *testing.T) {
	ctx := context.Background()
	svc, rec := groupFixture(t)
	g := svc.GuardGroups(rec, orders)
	// A filter in the update does not widen the group: "everything" stays the whole log.
	err := g.UpdateGroup(ctx, verity.GroupSpec{Stream: verity.AllStream, Group: "everything", Filter: verity.Filter{Categories: []string{"order"}}})
	wantKind(t, err, verity.PermissionDenied)
	mustNil(t, g.UpdateGroup(ctx, verity.GroupSpec{Stream: verity.AllStream, Group: "orders"}))
}

func TestGuardGroupsListShowsOnlyReadableSources(t *testing.T) {
	ctx := context.Background()
	names := func(infos []verity.GroupInfo) []string {
		var out []string
		for _, g := range infos {
			out = append(out, g.Stream+"/"+g.Group)
		}
		return out
	}
	cases := []struct {
		p    Principal
		want []string
	}{
		{admin, []string{"order-7/g", "secret-1/g", "$all/everything", "$all/orders"}},
		// Default access covers a log group restricted to a category, not the whole log.
		{bob, []string{"order-7/g", "$all/orders"}},
		{carol, []string{"order-7/g", "secret-1/g", "$all/orders"}},
		{orders, []string{"order-7/g", "$all/orders"}},
		{anon, nil},
	}
	for _, c := range cases {
		t.Run("for "+c.p.Name, func(t *testing.T) {
			svc, rec := groupFixture(t)
			before := svc.Denied()
			got, err := svc.GuardGroups(rec, c.p).ListGroups(ctx, "")
			mustNil(t, err)
			if !slices.Equal(names(got), c.want) {
				t.Fatalf("listed %v, want %v", names(got), c.want)
			}
			if svc.Denied() != before {
				t.Fatalf("listing counted %d refusals", svc.Denied()-before)
			}
		})
	}
}

func TestGuardGroupsRestartIsForAdmins(t *testing.T) {
	ctx := context.Background()
	svc, rec := groupFixture(t)
	wantKind(t, svc.GuardGroups(rec, bob).RestartGroups(ctx), verity.PermissionDenied)
	wantKind(t, svc.GuardGroups(rec, ops).RestartGroups(ctx), verity.PermissionDenied)
	wantKind(t, svc.GuardGroups(rec, anon).RestartGroups(ctx), verity.Unauthenticated)
	if got := rec.called(); len(got) != 0 {
		t.Fatalf("refused restarts reached the groups: %v", got)
	}
	mustNil(t, svc.GuardGroups(rec, admin).RestartGroups(ctx))
	if got := rec.called(); !slices.Equal(got, []string{"restart"}) {
		t.Fatalf("calls %v, want [restart]", got)
	}
}

func TestGuardGroupsInsecureTreatsEveryoneAsAdmin(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	svc := openService(t, store, Config{Insecure: true})
	rec := &recordingGroups{}
	g := svc.GuardGroups(rec, anon)
	mustNil(t, g.CreateGroup(ctx, verity.GroupSpec{Stream: verity.AllStream, Group: "x"}))
	mustNil(t, g.RestartGroups(ctx))
	if got := rec.called(); !slices.Equal(got, []string{"create $all", "restart"}) {
		t.Fatalf("calls %v", got)
	}
}
