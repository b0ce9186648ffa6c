package auth

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
)

func TestBootstrapAdmin(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	s1 := openService(t, store, Config{AdminPassword: "first-pw"})
	_, err := s1.Authenticate(ctx, basic("admin", "first-pw"))
	mustNil(t, err)
	mustNil(t, s1.Close())

	t.Run("is created once, not again with another password", func(t *testing.T) {
		s2 := openService(t, store, Config{AdminPassword: "second-pw"})
		_, err := s2.Authenticate(ctx, basic("admin", "first-pw"))
		mustNil(t, err)
		_, err = s2.Authenticate(ctx, basic("admin", "second-pw"))
		wantKind(t, err, verity.Unauthenticated)
		created := 0
		for _, e := range readUsersStream(t, store) {
			if e.Type == EventUserCreated {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d UserCreated events, want 1", created)
		}
	})
	t.Run("the password is not in the log", func(t *testing.T) {
		for _, e := range readUsersStream(t, store) {
			for _, pw := range []string{"first-pw", "second-pw"} {
				if bytes.Contains(e.Data, []byte(pw)) || bytes.Contains(e.Metadata, []byte(pw)) {
					t.Fatalf("event %s holds a password in clear: %s", e.Type, e.Data)
				}
			}
			if e.Type == EventUserCreated && !bytes.Contains(e.Data, []byte(`"hash":"$2a$`)) {
				t.Fatalf("UserCreated %s holds no bcrypt hash", e.Data)
			}
		}
	})
}

func TestNoAdminPasswordWarnsAndCreatesNothing(t *testing.T) {
	var logs bytes.Buffer
	store := newStore(t)
	svc := openService(t, store, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "VERITY_ADMIN_PASSWORD") {
		t.Fatalf("log %q: want a warning saying how to set an admin password", logs.String())
	}
	_, err := store.ReadStream(context.Background(), UsersStream, verity.ReadStreamOptions{})
	wantKind(t, err, verity.NotFound)
	_, err = svc.Authenticate(context.Background(), basic("admin", ""))
	wantKind(t, err, verity.Unauthenticated)
}

func TestASecondServiceSeesChangesOfTheFirst(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	s1 := openService(t, store, Config{AdminPassword: "changeit"})
	s2 := openService(t, store, Config{})

	mustNil(t, s1.CreateUser(ctx, admin, "bob", "pw", nil))
	waitFor(t, "s2 to let bob in", func() bool {
		_, err := s2.Authenticate(ctx, basic("bob", "pw"))
		return err == nil
	})
	mustNil(t, s1.ChangePassword(ctx, admin, "bob", "pw2"))
	waitFor(t, "s2 to refuse bob's old password", func() bool {
		_, err := s2.Authenticate(ctx, basic("bob", "pw"))
		return err != nil
	})
	// s2 writes next: its expected revision must be current, or it catches up and retries.
	mustNil(t, s2.CreateUser(ctx, admin, "carol", "pw", nil))
	waitFor(t, "s1 to list carol", func() bool {
		users, err := s1.ListUsers(ctx, admin)
		return err == nil && len(users) == 3
	})
	wantKind(t, s1.CreateUser(ctx, admin, "carol", "pw", nil), verity.Conflict)
}

func TestConcurrentWritersAgree(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	s1 := openService(t, store, Config{})
	s2 := openService(t, store, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []*Service{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.CreateUser(ctx, admin, "same", "pw", nil)
		}()
	}
	wg.Wait()
	close(errs)
	var ok, conflict int
	for err := range errs {
		switch verity.KindOf(err) {
		case verity.Conflict:
			conflict++
		default:
			if err == nil {
				ok++
			} else {
				t.Fatalf("unexpected error %v", err)
			}
		}
	}
	if ok != 1 || conflict != 1 {
		t.Fatalf("%d created and %d conflicts, want exactly one of each", ok, conflict)
	}
	created := 0
	for _, e := range readUsersStream(t, store) {
		if e.Type == EventUserCreated {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d UserCreated events, want 1", created)
	}
}

func TestUserManagementNeedsAnAdmin(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, newStore(t), Config{})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "pw", nil))
	for _, c := range []struct {
		p    Principal
		want verity.ErrorKind
	}{{bob, verity.PermissionDenied}, {ops, verity.PermissionDenied}, {anon, verity.Unauthenticated}} {
		wantKind(t, svc.CreateUser(ctx, c.p, "eve", "pw", nil), c.want)
		wantKind(t, svc.ChangePassword(ctx, c.p, "bob", "x"), c.want)
		wantKind(t, svc.DeleteUser(ctx, c.p, "bob"), c.want)
		wantKind(t, svc.UpdateUser(ctx, c.p, "bob", UserUpdate{Roles: &[]string{RoleAdmins}}), c.want)
		_, err := svc.ListUsers(ctx, c.p)
		wantKind(t, err, c.want)
		_, _, err = svc.IssueToken(ctx, c.p, "bob", "t", time.Hour)
		wantKind(t, err, c.want)
		wantKind(t, svc.RevokeToken(ctx, c.p, "bob", "t"), c.want)
		_, err = svc.ListTokens(ctx, c.p, "")
		wantKind(t, err, c.want)
	}
	users, err := svc.ListUsers(ctx, admin)
	mustNil(t, err)
	if len(users) != 1 || users[0].Name != "bob" || len(users[0].Roles) != 0 {
		t.Fatalf("users %+v: refused calls changed something", users)
	}
}

func TestBadInputIsInvalidAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	svc := openService(t, store, Config{})
	mustNil(t, svc.CreateUser(ctx, admin, "bob", "pw", nil))
	before := len(readUsersStream(t, store))
	cases := []struct {
		name string
		err  error
		want verity.ErrorKind
	}{
		{"empty user name", svc.CreateUser(ctx, admin, "", "pw", nil), verity.Invalid},
		{"user name with a colon", svc.CreateUser(ctx, admin, "a:b", "pw", nil), verity.Invalid},
		{"user name with a space", svc.CreateUser(ctx, admin, "a b", "pw", nil), verity.Invalid},
		{"user name starting with $", svc.CreateUser(ctx, admin, "$admins", "pw", nil), verity.Invalid},
		{"empty password", svc.CreateUser(ctx, admin, "eve", "", nil), verity.Invalid},
		{"password over 72 bytes", svc.CreateUser(ctx, admin, "eve", strings.Repeat("x", 73), nil), verity.Invalid},
		{"role $all", svc.CreateUser(ctx, admin, "eve", "pw", []string{RoleAll}), verity.Invalid},
		{"empty role", svc.CreateUser(ctx, admin, "eve", "pw", []string{""}), verity.Invalid},
		{"existing user", svc.CreateUser(ctx, admin, "bob", "pw", nil), verity.Conflict},
		{"password of a missing user", svc.ChangePassword(ctx, admin, "nobody", "pw"), verity.NotFound},
		{"deleting a missing user", svc.DeleteUser(ctx, admin, "nobody"), verity.NotFound},
		{"an admin deleting themselves", svc.DeleteUser(ctx, admin, "admin"), verity.Invalid},
		{"token for a missing user", func() error { _, _, err := svc.IssueToken(ctx, admin, "nobody", "t", 0); return err }(), verity.NotFound},
		{"token with a negative ttl", func() error { _, _, err := svc.IssueToken(ctx, admin, "bob", "t", -time.Second); return err }(), verity.Invalid},
		{"token with a bad name", func() error { _, _, err := svc.IssueToken(ctx, admin, "bob", "a/b", 0); return err }(), verity.Invalid},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			wantKind(t, c.err, c.want)
		})
	}
	if after := len(readUsersStream(t, store)); after != before {
		t.Fatalf("refused calls appended %d events", after-before)
	}
}

func TestAdminCannotLockThemselvesOut(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, newStore(t), Config{AdminPassword: "changeit"})
	yes := true
	wantKind(t, svc.UpdateUser(ctx, admin, "admin", UserUpdate{Disabled: &yes}), verity.Invalid)
	wantKind(t, svc.UpdateUser(ctx, admin, "admin", UserUpdate{Roles: &[]string{}}), verity.Invalid)
	mustNil(t, svc.UpdateUser(ctx, admin, "admin", UserUpdate{Roles: &[]string{RoleAdmins, "extra"}}))
}

func TestViewIsRebuiltFromTheLog(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	s1 := openService(t, store, Config{})
	mustNil(t, s1.CreateUser(ctx, admin, "bob", "pw", []string{"r1"}))
	mustNil(t, s1.CreateUser(ctx, admin, "gone", "pw", nil))
	mustNil(t, s1.DeleteUser(ctx, admin, "gone"))
	token, _, err := s1.IssueToken(ctx, admin, "bob", "t", time.Hour)
	mustNil(t, err)
	want, err := s1.ListUsers(ctx, admin)
	mustNil(t, err)
	mustNil(t, s1.Close())

	s2 := openService(t, store, Config{})
	got, err := s2.ListUsers(ctx, admin)
	mustNil(t, err)
	if len(got) != len(want) || got[0].Name != "bob" || got[0].Roles[0] != "r1" {
		t.Fatalf("rebuilt users %+v, want %+v", got, want)
	}
	p, err := s2.Authenticate(ctx, "Bearer "+token)
	mustNil(t, err)
	if p.Name != "bob" {
		t.Fatalf("token logs in as %q, want bob", p.Name)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"bcrypt cost too high", Config{BcryptCost: 99}, "BcryptCost"},
		{"negative max token ttl", Config{MaxTokenTTL: -time.Hour}, "MaxTokenTTL"},
		{"admin password too long", Config{AdminPassword: strings.Repeat("x", 100)}, "AdminPassword"},
		{"unknown default action", Config{DefaultAccess: []Action{0}}, "DefaultAccess"},
		{"rule naming nobody", Config{Rules: []Rule{{Categories: []string{"a"}, Actions: []Action{Read}}}}, "Rules[0]"},
		{"rule covering nothing", Config{Rules: []Rule{{Users: []string{"a"}, Actions: []Action{Read}}}}, "Rules[0]"},
		{"rule granting nothing", Config{Rules: []Rule{{Users: []string{"a"}, Categories: []string{"a"}}}}, "Rules[0]"},
		{"rule opening a system stream", Config{Rules: []Rule{{Users: []string{"a"}, Streams: []string{"$users"}, Actions: []Action{Read}}}}, "Rules[0]"},
		{"rule with a star inside", Config{Rules: []Rule{{Users: []string{"a"}, Streams: []string{"a*b"}, Actions: []Action{Read}}}}, "Rules[0]"},
		{"rule with a dash in a category", Config{Rules: []Rule{{Users: []string{"a"}, Categories: []string{"a-b"}, Actions: []Action{Read}}}}, "Rules[0]"},
	}
	for _, c := range cases {
		t.Run(c.name+" is named", func(t *testing.T) {
			err := c.cfg.Validate()
			wantKind(t, err, verity.Invalid)
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %q does not name %s", err, c.field)
			}
		})
	}
	mustNil(t, Config{}.Validate())
	mustNil(t, Config{Rules: ordersRules}.Validate())
}

func TestCloseStopsFollowingAndIsIdempotent(t *testing.T) {
	svc, err := Open(context.Background(), newStore(t), Config{BcryptCost: 4, Logger: quietLogger()})
	mustNil(t, err)
	mustNil(t, svc.Close())
	mustNil(t, svc.Close())
	select {
	case <-svc.done:
	default:
		t.Fatal("the follower is still running after Close")
	}
}
