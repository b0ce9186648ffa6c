package auth

import "slices"

// Roles with a meaning of their own.
const (
	// RoleAdmins may do everything, including reading and writing system ("$") streams.
	RoleAdmins = "$admins"
	// RoleOps may read system streams and run operations (scavenge), but not manage users.
	RoleOps = "$ops"
	// RoleAll stands, in an access list, for every caller, authenticated or not.
	RoleAll = "$all"
)

// Principal is who a request comes from: a user and the roles they hold. The zero value is
// the anonymous caller.
type Principal struct {
	// Name is the user's login; empty for an anonymous caller.
	Name string
	// Roles the user holds, e.g. "$admins" or "orders-service".
	Roles []string
}

// Anonymous reports whether no user was authenticated.
func (p Principal) Anonymous() bool { return p.Name == "" }

// IsAdmin reports whether p holds the $admins role.
func (p Principal) IsAdmin() bool { return p.HasRole(RoleAdmins) }

// HasRole reports whether p holds role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }
