package auth

import (
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/verity-dev/verity"
)

// UsersStream is the system stream that holds users and tokens. It is readable by admins
// only (not $ops): it holds password and token hashes.
const UsersStream = "$users"

// Event types of UsersStream. Their data is JSON; passwords appear only as bcrypt hashes and
// tokens only as SHA-256 hashes.
const (
	EventUserCreated     = "UserCreated"
	EventUserUpdated     = "UserUpdated"
	EventPasswordChanged = "PasswordChanged"
	EventUserDeleted     = "UserDeleted"
	EventTokenIssued     = "TokenIssued"
	EventTokenRevoked    = "TokenRevoked"
)

// AdminUser is the name of the user bootstrapped from Config.AdminPassword, and of the
// principal every caller becomes in insecure mode.
const AdminUser = "admin"

// User is what ListUsers tells about a user; never a password or a hash.
type User struct {
	Name     string    `json:"name"`
	Roles    []string  `json:"roles"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
}

// TokenInfo describes a bearer token; never the token itself, which IssueToken returns once.
type TokenInfo struct {
	// User the token logs in as.
	User string `json:"user"`
	// Name of the token, unique per user, e.g. "ci" or "orders-service".
	Name string `json:"name"`
	// Issued is when it was issued; Expires when it stops working.
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// userEvent is the JSON data of every UsersStream event; each type sets its own fields.
type userEvent struct {
	Name     string    `json:"name"`
	Roles    []string  `json:"roles,omitempty"`
	Disabled bool      `json:"disabled,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	Token    string    `json:"token,omitempty"`
	TokenSHA string    `json:"tokenSha256,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
}

type userRecord struct {
	User
	hash []byte // bcrypt
}

type tokenRecord struct {
	TokenInfo
	sha [32]byte
}

// view is the in-memory state folded from UsersStream. Only apply changes it.
type view struct {
	rev    int64 // revision of the last applied event; -1 before the first
	users  map[string]*userRecord
	tokens map[[32]byte]*tokenRecord
}

func newView() view {
	return view{rev: -1, users: map[string]*userRecord{}, tokens: map[[32]byte]*tokenRecord{}}
}

// apply folds one event into the view. Events it cannot read are skipped and logged: the
// stream is written by this package (or an admin by hand), and one bad event must not lock
// everyone out.
func (v *view) apply(log *slog.Logger, e verity.RecordedEvent) {
	v.rev = int64(e.Revision)
	var d userEvent
	if err := json.Unmarshal(e.Data, &d); err != nil {
		log.Warn("auth: skipping unreadable event of "+UsersStream, "revision", e.Revision, "type", e.Type, "err", err)
		return
	}
	u := v.users[d.Name]
	switch e.Type {
	case EventUserCreated:
		v.dropTokens(d.Name)
		v.users[d.Name] = &userRecord{
			User: User{Name: d.Name, Roles: slices.Clone(d.Roles), Disabled: d.Disabled, Created: d.Time},
			hash: []byte(d.Hash),
		}
	case EventUserUpdated:
		if u != nil {
			u.Roles, u.Disabled = slices.Clone(d.Roles), d.Disabled
		}
	case EventPasswordChanged:
		if u != nil {
			u.hash = []byte(d.Hash)
		}
	case EventUserDeleted:
		delete(v.users, d.Name)
		v.dropTokens(d.Name)
	case EventTokenIssued:
		sha, err := hex.DecodeString(d.TokenSHA)
		if err != nil || len(sha) != 32 || u == nil {
			log.Warn("auth: skipping bad "+EventTokenIssued+" event", "revision", e.Revision, "user", d.Name)
			return
		}
		if old := v.token(d.Name, d.Token); old != nil {
			delete(v.tokens, old.sha)
		}
		t := &tokenRecord{TokenInfo: TokenInfo{User: d.Name, Name: d.Token, Issued: d.Time, Expires: d.Expires}}
		copy(t.sha[:], sha)
		v.tokens[t.sha] = t
	case EventTokenRevoked:
		if t := v.token(d.Name, d.Token); t != nil {
			delete(v.tokens, t.sha)
		}
	default:
		log.Warn("auth: skipping event of unknown type in "+UsersStream, "revision", e.Revision, "type", e.Type)
	}
}

func (v *view) token(user, name string) *tokenRecord {
	for _, t := range v.tokens {
		if t.User == user && t.Name == name {
			return t
		}
	}
	return nil
}

func (v *view) dropTokens(user string) {
	for sha, t := range v.tokens {
		if t.User == user {
			delete(v.tokens, sha)
		}
	}
}

func (v *view) listUsers() []User {
	out := make([]User, 0, len(v.users))
	for _, u := range v.users {
		c := u.User
		c.Roles = slices.Clone(u.Roles)
		if c.Roles == nil {
			c.Roles = []string{}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (v *view) listTokens(user string) []TokenInfo {
	out := []TokenInfo{}
	for _, t := range v.tokens {
		if user == "" || t.User == user {
			out = append(out, t.TokenInfo)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Limits on names and passwords.
const (
	maxNameLength = 128
	// bcrypt reads at most 72 bytes of a password; a longer one would be silently cut.
	maxPasswordLength = 72
	minPasswordLength = 1
)

// checkName rejects names that would be ambiguous in a Basic header, in an $acl or in a
// URL path: empty, too long, with ':' or '/', control characters or spaces, or starting with
// '$' (reserved for system roles such as $admins and $all).
func checkName(what, name string) error {
	const op = "check name"
	switch {
	case name == "":
		return verity.Errorf(verity.Invalid, op, "%s name is empty", what)
	case len(name) > maxNameLength:
		return verity.Errorf(verity.Invalid, op, "%s name %.20q… is %d bytes, over the limit of %d", what, name, len(name), maxNameLength)
	case !utf8.ValidString(name):
		return verity.Errorf(verity.Invalid, op, "%s name %q is not valid UTF-8", what, name)
	case strings.HasPrefix(name, "$"):
		return verity.Errorf(verity.Invalid, op, "%s name %q starts with '$', which is reserved for system names", what, name)
	case strings.ContainsAny(name, ":/"):
		return verity.Errorf(verity.Invalid, op, "%s name %q contains ':' or '/'", what, name)
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return verity.Errorf(verity.Invalid, op, "%s name %q contains a space or a control character", what, name)
	}
	return nil
}

// checkRoles rejects empty role names and the role $all, which names everyone and is only
// meaningful in an $acl. $admins and $ops are allowed: they are how admins and operators are
// made.
func checkRoles(roles []string) error {
	for _, r := range roles {
		switch {
		case r == "":
			return verity.Errorf(verity.Invalid, "check roles", "empty role name")
		case r == RoleAll:
			return verity.Errorf(verity.Invalid, "check roles", "role %q names every caller and cannot be given to a user", r)
		case r != RoleAdmins && r != RoleOps:
			if err := checkName("role", r); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPassword(pw string) error {
	switch {
	case len(pw) < minPasswordLength:
		return verity.Errorf(verity.Invalid, "check password", "password is empty")
	case len(pw) > maxPasswordLength:
		return verity.Errorf(verity.Invalid, "check password", "password is %d bytes, over bcrypt's limit of %d", len(pw), maxPasswordLength)
	}
	return nil
}
