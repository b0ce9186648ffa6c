package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/verity-dev/verity"
)

// Action is something a caller may do to a stream. The zero value is no action and is never
// allowed. Actions are written in configuration files as "read", "write", "delete",
// "metadata-read" and "metadata-write" (also accepted: the $acl keys "$r", "$w", "$d", "$mr",
// "$mw").
type Action uint8

const (
	// Read a stream's events, or subscribe to them.
	Read Action = iota + 1
	// Write (append) events to a stream.
	Write
	// Delete a stream, softly or for good (tombstone).
	Delete
	// MetadataRead reads a stream's metadata ($$stream).
	MetadataRead
	// MetadataWrite sets a stream's metadata, its $acl included.
	MetadataWrite
)

// AllActions lists every action, in declaration order.
var AllActions = []Action{Read, Write, Delete, MetadataRead, MetadataWrite}

var actionNames = [...]string{
	Read:          "read",
	Write:         "write",
	Delete:        "delete",
	MetadataRead:  "metadata-read",
	MetadataWrite: "metadata-write",
}

// aclKeys are the $acl keys of each action, as KurrentDB writes them.
var aclKeys = [...]string{
	Read:          "$r",
	Write:         "$w",
	Delete:        "$d",
	MetadataRead:  "$mr",
	MetadataWrite: "$mw",
}

// String returns the action's configuration name, e.g. "metadata-read".
func (a Action) String() string {
	if a >= Read && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// valid reports whether a is one of the declared actions.
func (a Action) valid() bool { return a >= Read && a <= MetadataWrite }

// verb is how a denial message names the action: `user "bob" may not <verb> stream "x"`.
func (a Action) verb() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Delete:
		return "delete"
	case MetadataRead:
		return "read the metadata of"
	case MetadataWrite:
		return "write the metadata of"
	}
	return a.String() + " on"
}

// ParseAction reads an action's name ("read", "write", "delete", "metadata-read",
// "metadata-write", or an $acl key such as "$mr"), ignoring case; "metadata_read" and
// "metaread" spellings are accepted too. An unknown name is Invalid and the error names it.
func ParseAction(s string) (Action, error) {
	norm := strings.ToLower(strings.TrimSpace(s))
	norm = strings.NewReplacer("_", "-", " ", "-").Replace(norm)
	switch norm {
	case "metaread", "meta-read":
		norm = "metadata-read"
	case "metawrite", "meta-write":
		norm = "metadata-write"
	}
	for a := Read; a <= MetadataWrite; a++ {
		if norm == actionNames[a] || norm == aclKeys[a] {
			return a, nil
		}
	}
	return 0, verity.Errorf(verity.Invalid, "parse action", "unknown action %q: want one of read, write, delete, metadata-read, metadata-write", s)
}

// MarshalText writes the action's name, so actions read well in YAML and JSON.
func (a Action) MarshalText() ([]byte, error) {
	if !a.valid() {
		return nil, verity.Errorf(verity.Invalid, "marshal action", "unknown action %d", uint8(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads an action's name (see ParseAction).
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Rule grants the users and roles it names some actions on some streams. A user named by at
// least one rule, directly or through a role, may do only what their rules grant (a stream's
// $acl can narrow that further but not widen it); users no rule names get Config.DefaultAccess
// and the streams' $acl. Rules never open system ("$") streams: those are for admins.
//
// In a YAML configuration file:
//
//	access:
//	  - roles: [orders-service]
//	    categories: [order]
//	    actions: [read, write]
//	  - roles: [orders-service]
//	    categories: [customer]
//	    actions: [read]
type Rule struct {
	// Users the rule applies to, by login name.
	Users []string `yaml:"users,omitempty" json:"users,omitempty"`
	// Roles the rule applies to: every user holding one of them.
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	// Streams the rule covers: exact names, or a prefix ending in "*" ("order-*"; a lone "*"
	// is every non-system stream).
	Streams []string `yaml:"streams,omitempty" json:"streams,omitempty"`
	// Categories the rule covers: every stream whose category (the name before its first
	// '-') is one of these.
	Categories []string `yaml:"categories,omitempty" json:"categories,omitempty"`
	// Actions the rule grants on those streams.
	Actions []Action `yaml:"actions" json:"actions"`
}

// Validate reports what is wrong with the rule, naming the field and the value.
func (r Rule) Validate() error {
	const op = "validate rule"
	if len(r.Users) == 0 && len(r.Roles) == 0 {
		return verity.Errorf(verity.Invalid, op, "users and roles are both empty: a rule must name who it applies to")
	}
	if len(r.Streams) == 0 && len(r.Categories) == 0 {
		return verity.Errorf(verity.Invalid, op, "streams and categories are both empty: a rule must name what it covers")
	}
	if len(r.Actions) == 0 {
		return verity.Errorf(verity.Invalid, op, "actions is empty: a rule must grant at least one of read, write, delete, metadata-read, metadata-write")
	}
	for _, a := range r.Actions {
		if !a.valid() {
			return verity.Errorf(verity.Invalid, op, "actions: unknown action %d", uint8(a))
		}
	}
	for _, u := range r.Users {
		if u == "" {
			return verity.Errorf(verity.Invalid, op, "users: empty user name")
		}
	}
	for _, role := range r.Roles {
		if role == "" {
			return verity.Errorf(verity.Invalid, op, "roles: empty role name")
		}
	}
	for _, s := range r.Streams {
		pat := strings.TrimSuffix(s, "*")
		switch {
		case s == "":
			return verity.Errorf(verity.Invalid, op, "streams: empty stream name")
		case strings.Contains(pat, "*"):
			return verity.Errorf(verity.Invalid, op, "streams: %q: '*' may only end a prefix, as in \"order-*\"", s)
		case verity.IsSystemStream(pat):
			return verity.Errorf(verity.Invalid, op, "streams: %q is a system stream: system streams are for admins and cannot be granted by a rule", s)
		}
	}
	for _, c := range r.Categories {
		switch {
		case c == "":
			return verity.Errorf(verity.Invalid, op, "categories: empty category")
		case strings.Contains(c, "-"):
			return verity.Errorf(verity.Invalid, op, "categories: %q contains '-': a category is the part of a stream name before its first '-'", c)
		case verity.IsSystemStream(c):
			return verity.Errorf(verity.Invalid, op, "categories: %q is a system category: system streams are for admins and cannot be granted by a rule", c)
		}
	}
	return nil
}

// names reports whether the rule applies to p.
func (r Rule) names(p Principal) bool {
	if p.Anonymous() {
		return false
	}
	if slices.Contains(r.Users, p.Name) {
		return true
	}
	for _, role := range r.Roles {
		if p.HasRole(role) {
			return true
		}
	}
	return false
}

// grants reports whether the rule grants a on a non-system stream.
func (r Rule) grants(a Action, stream string) bool {
	return slices.Contains(r.Actions, a) && r.coversStream(stream)
}

func (r Rule) coversStream(stream string) bool {
	if slices.Contains(r.Categories, verity.Category(stream)) {
		return true
	}
	for _, s := range r.Streams {
		if prefix, ok := strings.CutSuffix(s, "*"); ok {
			if strings.HasPrefix(stream, prefix) {
				return true
			}
		} else if s == stream {
			return true
		}
	}
	return false
}

// coversCategory reports whether every stream of category c is covered.
func (r Rule) coversCategory(c string) bool {
	return r.coversPrefix(c + "-")
}

// coversPrefix reports whether every stream whose name starts with p is covered.
func (r Rule) coversPrefix(p string) bool {
	// A stream starting with "c-" (c without '-') is in category c.
	if c, _, ok := strings.Cut(p, "-"); ok && c != "" && slices.Contains(r.Categories, c) {
		return true
	}
	for _, s := range r.Streams {
		if prefix, ok := strings.CutSuffix(s, "*"); ok && strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
