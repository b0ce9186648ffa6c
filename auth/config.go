package auth

import (
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/verity-dev/verity"
)

// Config configures a Service. The zero value of every field means its default: secure
// (authentication on), no rules, KurrentDB's default user-stream access.
type Config struct {
	// Insecure turns authentication off: every caller, with credentials or without, right or
	// wrong, is the admin principal "admin". For `verity dev` and the plaintext conformance
	// server only. Default false.
	Insecure bool

	// AdminPassword bootstraps the user "admin" (role $admins) with this password when the
	// Service opens and no user "admin" exists. Never logged and never stored in clear. Empty
	// (the default) creates nothing and logs a warning saying how to set one: there is no
	// default password.
	AdminPassword string

	// Rules limit what the users and roles they name may do (see Rule). Default none.
	Rules []Rule

	// DefaultAccess is what an authenticated user whom no rule names may do to a non-system
	// stream whose $acl says nothing about the action. Nil (the default) means every action:
	// read, write, delete, metadata-read and metadata-write, as KurrentDB's default
	// user-stream ACL allows. An empty, non-nil list (`default_access: []`) allows nothing
	// that an $acl or a rule does not grant.
	DefaultAccess []Action

	// BcryptCost is the bcrypt cost of new password hashes. Default bcrypt.DefaultCost (10,
	// about 50 ms a hash); tests use bcrypt.MinCost (4).
	BcryptCost int

	// CredentialCacheTTL is how long a successful Basic verification is remembered, so that
	// every call of a client does not pay for bcrypt. A password change, a disabled or
	// deleted user takes effect at once regardless. Default 1 minute; negative disables the
	// cache.
	CredentialCacheTTL time.Duration

	// MaxFailedLogins is how many wrong passwords for one user name, within
	// FailedLoginWindow, lock that name's password checks for FailedLoginWindow: they are
	// refused (ResourceExhausted) without a bcrypt comparison. A right password checked
	// before the lock (in the credential cache, even expired, against the user's current
	// hash) still passes, so running clients are not locked out by a guesser; the same
	// credentials checked at once count once. Default 10; negative turns the throttle off.
	MaxFailedLogins int
	// FailedLoginWindow: see MaxFailedLogins. Default 1 minute.
	FailedLoginWindow time.Duration

	// MaxTokenTTL caps the lifetime of issued bearer tokens. Default 1 year; a token asked
	// for with no TTL gets this one.
	MaxTokenTTL time.Duration

	// OnDenied, when set, is called for each refused call (after counting it in Denied), on
	// the caller's goroutine: it must be quick. For metrics.
	OnDenied func(p Principal, a Action, stream string)

	// Now is the clock for token expiry and the credential cache. Default time.Now.
	Now func() time.Time
	// Logger receives warnings (no admin, subscription trouble). Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultCredentialCacheTTL = time.Minute
	DefaultMaxTokenTTL        = 365 * 24 * time.Hour
	DefaultMaxFailedLogins    = 10
	DefaultFailedLoginWindow  = time.Minute
	// maxCredentialCache bounds the credential cache; it is emptied when full, so a flood of
	// distinct right passwords costs bcrypt time, never memory.
	maxCredentialCache = 10_000
)

func (c Config) withDefaults() Config {
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.CredentialCacheTTL == 0 {
		c.CredentialCacheTTL = DefaultCredentialCacheTTL
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.MaxFailedLogins == 0 {
		c.MaxFailedLogins = DefaultMaxFailedLogins
	}
	if c.FailedLoginWindow == 0 {
		c.FailedLoginWindow = DefaultFailedLoginWindow
	}
	if c.DefaultAccess == nil {
		c.DefaultAccess = AllActions
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate names the first field that is wrong. Errors are Invalid.
func (c Config) Validate() error {
	const op = "auth config"
	if c.BcryptCost != 0 && (c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost) {
		return verity.Errorf(verity.Invalid, op, "BcryptCost %d out of range [%d, %d]", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if c.MaxTokenTTL < 0 {
		return verity.Errorf(verity.Invalid, op, "MaxTokenTTL %s is negative", c.MaxTokenTTL)
	}
	if c.FailedLoginWindow < 0 {
		return verity.Errorf(verity.Invalid, op, "FailedLoginWindow %s is negative", c.FailedLoginWindow)
	}
	if c.AdminPassword != "" {
		if err := checkPassword(c.AdminPassword); err != nil {
			return verity.Errorf(verity.Invalid, op, "AdminPassword: %s", err.(*verity.Error).Message)
		}
	}
	for _, a := range c.DefaultAccess {
		if !a.valid() {
			return verity.Errorf(verity.Invalid, op, "DefaultAccess: unknown action %d", uint8(a))
		}
	}
	for i, r := range c.Rules {
		if err := r.Validate(); err != nil {
			return verity.Errorf(verity.Invalid, op, "Rules[%d]: %s", i, ruleMessage(err))
		}
	}
	return nil
}

func ruleMessage(err error) string {
	if e, ok := err.(*verity.Error); ok {
		return e.Message
	}
	return fmt.Sprint(err)
}
