package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/verity-dev/verity"
)

// maxAuthorizationLength bounds the Authorization header we look at; anything longer is no
// credential of ours and is refused before any work.
const maxAuthorizationLength = 4096

// credentials is a parsed Authorization header.
type credentials struct {
	scheme   string // "basic", "bearer", or "" for none
	user     string
	password string
	token    string
}

// parseAuthorization reads an HTTP Authorization header (or the gRPC "authorization"
// metadata, which carries the same text): "Basic base64(user:password)" or "Bearer token".
// The scheme is case-insensitive. Errors are Unauthenticated and say what is malformed,
// never echoing a password or a token.
func parseAuthorization(h string) (credentials, error) {
	const op = "authenticate"
	h = strings.TrimSpace(h)
	if h == "" {
		return credentials{}, nil
	}
	if len(h) > maxAuthorizationLength {
		return credentials{}, verity.Errorf(verity.Unauthenticated, op, "authorization header is %d bytes, over the limit of %d", len(h), maxAuthorizationLength)
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "basic":
		if rest == "" {
			return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Basic credentials: nothing after \"Basic\"; want base64 of user:password")
		}
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			// Some clients leave out the padding.
			if raw, err = base64.RawStdEncoding.DecodeString(rest); err != nil {
				return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Basic credentials: not base64 of user:password")
			}
		}
		user, pw, ok := strings.Cut(string(raw), ":")
		switch {
		case !ok:
			return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Basic credentials: no ':' between user and password")
		case user == "":
			return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Basic credentials: empty user name")
		case !utf8.ValidString(user):
			return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Basic credentials: user name is not valid UTF-8")
		}
		return credentials{scheme: "basic", user: user, password: pw}, nil
	case "bearer":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return credentials{}, verity.Errorf(verity.Unauthenticated, op, "malformed Bearer credentials: want \"Bearer <token>\"")
		}
		return credentials{scheme: "bearer", token: rest}, nil
	}
	return credentials{}, verity.Errorf(verity.Unauthenticated, op, "unsupported authorization scheme %.20q: use Basic or Bearer", scheme)
}

// Authenticate turns an Authorization header into the Principal it proves. An empty header
// is the anonymous Principal, not an error: the guarded store refuses what anonymous callers
// may not do. A malformed header, a wrong user or password, a disabled user, or an unknown,
// expired or revoked token is Unauthenticated; the message never tells whether a user
// exists. In insecure mode every caller is the admin, whatever the header says.
//
// A Basic verification costs a bcrypt comparison (tens of milliseconds); successes are
// remembered for Config.CredentialCacheTTL, keyed by a SHA-256 of user and password, and
// forgotten as soon as the password changes. Too many wrong passwords for one user name
// lock it for a while (Config.MaxFailedLogins; ResourceExhausted), cached right ones
// excepted. Safe for concurrent use.
func (s *Service) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	const op = "authenticate"
	if s.cfg.Insecure {
		return Principal{Name: AdminUser, Roles: []string{RoleAdmins}}, nil
	}
	if err := ctx.Err(); err != nil {
		return Principal{}, err
	}
	c, err := parseAuthorization(authorization)
	if err != nil {
		return Principal{}, err
	}
	switch c.scheme {
	case "basic":
		return s.authBasic(c.user, c.password)
	case "bearer":
		return s.authBearer(c.token)
	}
	return Principal{}, nil
}

// wrongPassword is the one answer to a bad user name or a bad password, so that it does not
// tell which.
func wrongPassword() error {
	return verity.Errorf(verity.Unauthenticated, "authenticate", "wrong user name or password")
}

func (s *Service) authBasic(user, password string) (Principal, error) {
	key := credKey(user, password)
	now := s.cfg.Now()

	s.mu.RLock()
	u, ok := s.v.users[user]
	var hash []byte
	var p Principal
	var disabled bool
	if ok {
		hash, disabled = u.hash, u.Disabled
		p = Principal{Name: u.Name, Roles: slices.Clone(u.Roles)}
	}
	s.mu.RUnlock()

	// proven: the password was found right before, against the hash the user still has,
	// but that was longer than CredentialCacheTTL ago.
	var proven bool
	if ok && s.cfg.CredentialCacheTTL > 0 {
		s.credMu.Lock()
		e, hit := s.creds[key]
		s.credMu.Unlock()
		// The cached hash must be the current one: a new password misses.
		if hit && e.user == user && subtle.ConstantTimeCompare([]byte(e.hash), hash) == 1 {
			if !now.Before(e.expires) {
				proven = true
			} else {
				if disabled {
					return Principal{}, disabledError(user)
				}
				return p, nil
			}
		}
	}
	// Calls checking the same user and password at once (a client starting many calls
	// before the first is remembered) share one check: one bcrypt comparison, and one
	// place in the throttle, so that a burst of right passwords is not taken for guessing.
	if _, err, _ := s.verifying.Do(string(key[:]), func() (any, error) {
		return nil, s.verify(user, password, key, ok, hash, proven, now)
	}); err != nil {
		return Principal{}, err
	}
	if disabled {
		return Principal{}, disabledError(user)
	}
	return p, nil
}

// verify checks password against hash (of a user that exists, if ok), held to the login
// throttle, and remembers a right one. proven says the password was found right before,
// against the same hash.
func (s *Service) verify(user, password string, key [32]byte, ok bool, hash []byte, proven bool, now time.Time) error {
	if err := s.throttle.check(user, now); err != nil {
		if proven {
			// A running client outlasts its cache entry: a guesser keeping the name
			// locked must not lock it out once the entry has expired.
			return nil
		}
		return err
	}
	if !ok {
		// Spend the same bcrypt time as for a real user so that timing does not tell.
		_ = bcrypt.CompareHashAndPassword(dummyHash(s.cfg.BcryptCost), []byte(password))
		s.throttle.failed(user, now)
		return wrongPassword()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		s.throttle.failed(user, now)
		return wrongPassword()
	}
	s.throttle.succeeded(user)
	if s.cfg.CredentialCacheTTL > 0 {
		s.credMu.Lock()
		if len(s.creds) >= maxCredentialCache {
			clear(s.creds)
		}
		s.creds[key] = credEntry{user: user, hash: string(hash), expires: now.Add(s.cfg.CredentialCacheTTL)}
		s.credMu.Unlock()
	}
	return nil
}

// disabledError is returned only to a caller who proved the password or holds a token, so
// it tells nothing to a guesser.
func disabledError(user string) error {
	return verity.Errorf(verity.Unauthenticated, "authenticate", "user %q is disabled; an admin can enable it again", user)
}

func credKey(user, password string) [32]byte {
	// Length-prefix the user so that ("a:b", "c") and ("a", "b:c") differ.
	return sha256.Sum256(fmt.Appendf(nil, "%d:%s:%s", len(user), user, password))
}

func (s *Service) authBearer(token string) (Principal, error) {
	const op = "authenticate"
	// Looking up the token's SHA-256 compares hashes, not secrets: a timing difference
	// tells nothing about a token an attacker does not already have.
	sha := sha256.Sum256([]byte(token))
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.v.tokens[sha]
	if !ok {
		return Principal{}, verity.Errorf(verity.Unauthenticated, op, "unknown or revoked bearer token")
	}
	if !s.cfg.Now().Before(t.Expires) {
		return Principal{}, verity.Errorf(verity.Unauthenticated, op, "bearer token %q of user %q expired at %s; ask an admin for a new one", t.Name, t.User, t.Expires.Format("2006-01-02T15:04:05Z07:00"))
	}
	u, ok := s.v.users[t.User]
	if !ok {
		return Principal{}, verity.Errorf(verity.Unauthenticated, op, "unknown or revoked bearer token")
	}
	if u.Disabled {
		return Principal{}, disabledError(u.Name)
	}
	return Principal{Name: u.Name, Roles: slices.Clone(u.Roles)}, nil
}

// dummyHashes holds, per bcrypt cost, the hash an unknown user's password is compared
// against, made the first time one is needed in the process (not at every Open: a hash
// costs as much as a comparison, and a server that never sees an unknown user, such as
// one in --insecure mode, needs none).
var dummyHashes struct {
	sync.Mutex
	m map[int]func() []byte
}

func dummyHash(cost int) []byte {
	dummyHashes.Lock()
	f, ok := dummyHashes.m[cost]
	if !ok {
		f = sync.OnceValue(func() []byte {
			h, err := bcrypt.GenerateFromPassword([]byte("verity dummy password"), cost)
			if err != nil { // only for a cost out of range, which Config.Validate refuses
				panic("auth: dummy hash: " + err.Error())
			}
			return h
		})
		if dummyHashes.m == nil {
			dummyHashes.m = map[int]func() []byte{}
		}
		dummyHashes.m[cost] = f
	}
	dummyHashes.Unlock()
	return f()
}
