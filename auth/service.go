package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/verity-dev/verity"
)

// Service authenticates callers, manages users and tokens, and hands out guarded stores.
// Its user list is a view of UsersStream kept current by following the stream, so several
// Services over one store (or a restarted one) agree. All methods may be called concurrently.
type Service struct {
	cfg   Config
	store verity.Store

	mu sync.RWMutex
	v  view

	credMu sync.Mutex
	creds  map[[32]byte]credEntry

	denied   atomic.Uint64
	throttle *loginThrottle // nil when Config.MaxFailedLogins turns it off
	// verifying shares one password check among the calls making it at once.
	verifying singleflight.Group

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// credEntry remembers a successful Basic verification.
type credEntry struct {
	user    string
	hash    string // the bcrypt hash it was verified against: a new password misses
	expires time.Time
}

// Open builds the view of users and tokens from UsersStream, bootstraps the admin user if
// Config.AdminPassword says so, and starts following the stream. Close stops that. The store
// stays the caller's: Close does not close it.
// Errors: Invalid (bad config), or what the store returns reading or writing UsersStream.
func Open(ctx context.Context, store verity.Store, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Service{cfg: cfg, store: store, v: newView(), creds: map[[32]byte]credEntry{}, done: make(chan struct{}),
		throttle: newLoginThrottle(cfg.MaxFailedLogins, cfg.FailedLoginWindow)}
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.follow(fctx)
	return s, nil
}

// Close stops following UsersStream and waits for it. It does not close the store. It is
// idempotent.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

// Denied returns how many calls the guarded stores have refused.
func (s *Service) Denied() uint64 { return s.denied.Load() }

func (s *Service) bootstrap(ctx context.Context) error {
	s.mu.RLock()
	_, exists := s.v.users[AdminUser]
	s.mu.RUnlock()
	switch {
	case exists:
		return nil
	case s.cfg.AdminPassword == "":
		if !s.cfg.Insecure {
			s.cfg.Logger.Warn("auth: no user \"admin\" exists and no admin password is configured, so nobody can manage users; " +
				"set admin_password in the config file or VERITY_ADMIN_PASSWORD in the environment and restart")
		}
		return nil
	}
	err := s.createUser(ctx, AdminUser, s.cfg.AdminPassword, []string{RoleAdmins})
	if verity.KindOf(err) == verity.Conflict {
		return nil // another Service bootstrapped it first
	}
	if err == nil {
		s.cfg.Logger.Info("auth: created user \"admin\" from the configured admin password")
	}
	return err
}

// catchUp applies every event of UsersStream past the view's revision.
func (s *Service) catchUp(ctx context.Context) error {
	const page = 1000
	for {
		s.mu.RLock()
		from := uint64(s.v.rev + 1)
		s.mu.RUnlock()
		evs, err := s.store.ReadStream(ctx, UsersStream, verity.ReadStreamOptions{From: from, Limit: page})
		if verity.KindOf(err) == verity.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range evs {
			s.apply(e)
		}
		if len(evs) < page {
			return nil
		}
	}
}

func (s *Service) apply(e verity.RecordedEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int64(e.Revision) <= s.v.rev {
		return // already applied: by the writer itself, or by a catch-up
	}
	s.v.apply(s.cfg.Logger, e)
}

// follow keeps the view current with changes made through other Services over the store.
func (s *Service) follow(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.RLock()
		from := uint64(s.v.rev + 1)
		s.mu.RUnlock()
		err := s.followOnce(ctx, from)
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("auth: following "+UsersStream+" failed; retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Service) followOnce(ctx context.Context, from uint64) error {
	sub, err := s.store.Subscribe(ctx, verity.SubscribeOptions{Stream: UsersStream, From: from})
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		m, err := sub.Recv(ctx)
		if err != nil {
			return err
		}
		if m.Kind == verity.MessageEvent {
			s.apply(m.Event)
		}
	}
}

// mutate appends the event build makes from the current view, with the view's revision as
// the expected revision, and applies it. When another Service wrote first (Conflict) it
// catches up and tries again, so build always judges the latest state.
func (s *Service) mutate(ctx context.Context, op string, build func(v *view) (string, userEvent, error)) error {
	for attempt := 0; ; attempt++ {
		s.mu.RLock()
		typ, d, err := build(&s.v)
		rev := s.v.rev
		s.mu.RUnlock()
		if err != nil {
			return err
		}
		data, err := json.Marshal(d)
		if err != nil {
			return &verity.Error{Kind: verity.Internal, Op: op, Err: err}
		}
		expected := verity.NoStream()
		if rev >= 0 {
			expected = verity.Exact(uint64(rev))
		}
		res, err := s.store.Append(ctx, UsersStream, expected, verity.EventData{Type: typ, Data: data})
		if verity.KindOf(err) == verity.Conflict && attempt < 10 {
			if err := s.catchUp(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		s.apply(verity.RecordedEvent{Type: typ, Data: data, Stream: UsersStream, Revision: res.Revision, Position: res.Position})
		return nil
	}
}

func requireAdmin(op string, caller Principal) error {
	switch {
	case caller.Anonymous():
		return &verity.Error{Kind: verity.Unauthenticated, Op: op, Message: "authentication required: only admins manage users and tokens"}
	case !caller.IsAdmin():
		return &verity.Error{Kind: verity.PermissionDenied, Op: op, Message: fmt.Sprintf("user %q is not an admin: only admins manage users and tokens", caller.Name)}
	}
	return nil
}

func (s *Service) hash(op, password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return "", &verity.Error{Kind: verity.Internal, Op: op, Err: err}
	}
	return string(h), nil
}

// CreateUser adds a user with a password and roles. The caller must be an admin.
// Errors: Unauthenticated, PermissionDenied, Invalid (bad name, password or role), Conflict
// (the user exists), or the store's.
func (s *Service) CreateUser(ctx context.Context, caller Principal, name, password string, roles []string) error {
	if err := requireAdmin("create user", caller); err != nil {
		return err
	}
	return s.createUser(ctx, name, password, roles)
}

func (s *Service) createUser(ctx context.Context, name, password string, roles []string) error {
	const op = "create user"
	if err := checkName("user", name); err != nil {
		return err
	}
	if err := checkRoles(roles); err != nil {
		return err
	}
	h, err := s.hash(op, password)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	return s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		if _, ok := v.users[name]; ok {
			return "", userEvent{}, verity.Errorf(verity.Conflict, op, "user %q already exists", name)
		}
		return EventUserCreated, userEvent{Name: name, Roles: slices.Clone(roles), Hash: h, Time: now}, nil
	})
}

// UserUpdate changes a user's roles or disabled flag; nil fields are left as they are.
type UserUpdate struct {
	// Roles replaces the user's roles; an empty list removes them all.
	Roles *[]string `json:"roles,omitempty"`
	// Disabled stops (true) or lets again (false) the user log in, by password or token.
	Disabled *bool `json:"disabled,omitempty"`
}

// UpdateUser changes a user's roles or disabled flag. The caller must be an admin; an admin
// cannot disable themselves or take away their own $admins role, so that a slip of the hand
// cannot leave nobody able to manage users.
// Errors: Unauthenticated, PermissionDenied, Invalid, NotFound (no such user), or the store's.
func (s *Service) UpdateUser(ctx context.Context, caller Principal, name string, u UserUpdate) error {
	const op = "update user"
	if err := requireAdmin(op, caller); err != nil {
		return err
	}
	if u.Roles != nil {
		if err := checkRoles(*u.Roles); err != nil {
			return err
		}
	}
	return s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		cur, ok := v.users[name]
		if !ok {
			return "", userEvent{}, verity.Errorf(verity.NotFound, op, "no user %q", name)
		}
		d := userEvent{Name: name, Roles: slices.Clone(cur.Roles), Disabled: cur.Disabled}
		if u.Roles != nil {
			d.Roles = slices.Clone(*u.Roles)
		}
		if u.Disabled != nil {
			d.Disabled = *u.Disabled
		}
		if name == caller.Name && (d.Disabled || !slices.Contains(d.Roles, RoleAdmins)) {
			return "", userEvent{}, verity.Errorf(verity.Invalid, op, "user %q may not disable themselves or drop their own %s role; let another admin do it", name, RoleAdmins)
		}
		return EventUserUpdated, d, nil
	})
}

// ChangePassword sets a user's password. The caller must be an admin. Cached verifications
// of the old password stop working at once.
// Errors: Unauthenticated, PermissionDenied, Invalid, NotFound, or the store's.
func (s *Service) ChangePassword(ctx context.Context, caller Principal, name, password string) error {
	const op = "change password"
	if err := requireAdmin(op, caller); err != nil {
		return err
	}
	h, err := s.hash(op, password)
	if err != nil {
		return err
	}
	return s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		if _, ok := v.users[name]; !ok {
			return "", userEvent{}, verity.Errorf(verity.NotFound, op, "no user %q", name)
		}
		return EventPasswordChanged, userEvent{Name: name, Hash: h}, nil
	})
}

// DeleteUser removes a user and revokes their tokens. The caller must be an admin and may
// not delete themselves.
// Errors: Unauthenticated, PermissionDenied, Invalid, NotFound, or the store's.
func (s *Service) DeleteUser(ctx context.Context, caller Principal, name string) error {
	const op = "delete user"
	if err := requireAdmin(op, caller); err != nil {
		return err
	}
	if name == caller.Name {
		return verity.Errorf(verity.Invalid, op, "user %q may not delete themselves; let another admin do it", name)
	}
	return s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		if _, ok := v.users[name]; !ok {
			return "", userEvent{}, verity.Errorf(verity.NotFound, op, "no user %q", name)
		}
		return EventUserDeleted, userEvent{Name: name}, nil
	})
}

// ListUsers returns every user, sorted by name. The caller must be an admin.
// Errors: Unauthenticated, PermissionDenied.
func (s *Service) ListUsers(ctx context.Context, caller Principal) ([]User, error) {
	if err := requireAdmin("list users", caller); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.v.listUsers(), nil
}

// GetUser returns one user. The caller must be an admin.
// Errors: Unauthenticated, PermissionDenied, NotFound.
func (s *Service) GetUser(ctx context.Context, caller Principal, name string) (User, error) {
	const op = "get user"
	if err := requireAdmin(op, caller); err != nil {
		return User{}, err
	}
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.v.users[name]
	if !ok {
		return User{}, verity.Errorf(verity.NotFound, op, "no user %q", name)
	}
	c := u.User
	c.Roles = slices.Clone(u.Roles)
	if c.Roles == nil {
		c.Roles = []string{}
	}
	return c, nil
}

// tokenPrefix marks Verity bearer tokens so that secret scanners and people can tell them
// apart; the 256 random bits follow, base64url without padding.
const tokenPrefix = "vrt_"

// IssueToken makes a bearer token that logs in as user until ttl has passed (zero or over
// Config.MaxTokenTTL: MaxTokenTTL). The token is returned once and only its SHA-256 is kept;
// a token of the same user and name is replaced. The caller must be an admin.
// Errors: Unauthenticated, PermissionDenied, Invalid (bad name, negative ttl), NotFound (no
// such user), or the store's.
func (s *Service) IssueToken(ctx context.Context, caller Principal, user, name string, ttl time.Duration) (string, TokenInfo, error) {
	const op = "issue token"
	if err := requireAdmin(op, caller); err != nil {
		return "", TokenInfo{}, err
	}
	if err := checkName("token", name); err != nil {
		return "", TokenInfo{}, err
	}
	if ttl < 0 {
		return "", TokenInfo{}, verity.Errorf(verity.Invalid, op, "ttl %s is negative", ttl)
	}
	if ttl == 0 || ttl > s.cfg.MaxTokenTTL {
		ttl = s.cfg.MaxTokenTTL
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", TokenInfo{}, &verity.Error{Kind: verity.Internal, Op: op, Err: err}
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	sha := sha256.Sum256([]byte(token))
	now := s.cfg.Now().UTC()
	info := TokenInfo{User: user, Name: name, Issued: now, Expires: now.Add(ttl)}
	err := s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		if _, ok := v.users[user]; !ok {
			return "", userEvent{}, verity.Errorf(verity.NotFound, op, "no user %q", user)
		}
		return EventTokenIssued, userEvent{Name: user, Token: name, TokenSHA: hex.EncodeToString(sha[:]), Time: now, Expires: info.Expires}, nil
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// RevokeToken makes the user's token of that name stop working at once. The caller must be
// an admin.
// Errors: Unauthenticated, PermissionDenied, NotFound (no such token), or the store's.
func (s *Service) RevokeToken(ctx context.Context, caller Principal, user, name string) error {
	const op = "revoke token"
	if err := requireAdmin(op, caller); err != nil {
		return err
	}
	return s.mutate(ctx, op, func(v *view) (string, userEvent, error) {
		if v.token(user, name) == nil {
			return "", userEvent{}, verity.Errorf(verity.NotFound, op, "user %q has no token %q", user, name)
		}
		return EventTokenRevoked, userEvent{Name: user, Token: name}, nil
	})
}

// ListTokens describes the tokens of user, or of everyone when user is empty, expired ones
// included. The caller must be an admin.
// Errors: Unauthenticated, PermissionDenied.
func (s *Service) ListTokens(ctx context.Context, caller Principal, user string) ([]TokenInfo, error) {
	if err := requireAdmin("list tokens", caller); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.v.listTokens(user), nil
}
