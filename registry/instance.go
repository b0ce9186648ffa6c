package registry

import (
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Health is an instance's health as its owner (or a health checker) last reported it.
type Health string

const (
	// Healthy instances are returned by Lookup and picked by a Resolver. A new instance is
	// healthy unless it registers otherwise.
	Healthy Health = "healthy"
	// Unhealthy instances stay registered (and keep their lease) but are not returned by
	// Lookup, so no resolver sends them traffic.
	Unhealthy Health = "unhealthy"
)

// Instance is one running copy of a service.
type Instance struct {
	// Service is the virtual address the instance serves, such as "orders": a DNS label
	// (1 to 63 lower-case letters, digits and '-', starting with a letter and not ending
	// with '-').
	Service string `json:"service"`
	// ID identifies the instance across the whole registry; Register generates a UUID when
	// it is empty. Up to 128 letters, digits and '.', '_', ':', '-'.
	ID string `json:"id"`
	// Address is where the instance is reached: "host:port" or an absolute URL
	// ("http://10.0.0.7:8080/api").
	Address string `json:"address"`
	// Version is free text, such as "1.4.2" (up to 128 printable characters); optional.
	Version string `json:"version,omitempty"`
	// Metadata is free key/value text (up to 64 keys; keys up to 128 bytes, values up to
	// 1,024 bytes); optional.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Health is the instance's health; empty at Register means Healthy.
	Health Health `json:"health"`
	// HealthReason says why the health was last set (from SetHealth); may be empty.
	HealthReason string `json:"healthReason,omitempty"`
	// Registered is when the instance was last registered (set by the registry).
	Registered time.Time `json:"registered"`
}

// Lease is what Register grants: the instance must call Heartbeat within TTL, again and
// again, or be removed.
type Lease struct {
	InstanceID string        `json:"instanceId"`
	TTL        time.Duration `json:"ttl"`
}

// clone returns a copy of in that shares nothing with it.
func (in Instance) clone() Instance {
	in.Metadata = maps.Clone(in.Metadata)
	return in
}

// sameRegistration reports whether a and b describe the same registration (everything a
// client sets at Register but the health).
func sameRegistration(a, b Instance) bool {
	return a.Service == b.Service && a.ID == b.ID && a.Address == b.Address &&
		a.Version == b.Version && maps.Equal(a.Metadata, b.Metadata)
}

// Limits of what an instance may carry.
const (
	maxServiceLen  = 63
	maxIDLen       = 128
	maxAddressLen  = 1024
	maxVersionLen  = 128
	maxMetaKeys    = 64
	maxMetaKeyLen  = 128
	maxMetaValLen  = 1024
	maxReasonBytes = 1024
)

// ValidateService checks that name is a service name: a DNS label, 1 to 63 lower-case
// letters, digits and '-', starting with a letter and not ending with '-'. It returns an
// Invalid error that names the bad value.
func ValidateService(op, name string) error {
	if name == "" {
		return verity.Errorf(verity.Invalid, op, "service name is empty")
	}
	if len(name) > maxServiceLen {
		return verity.Errorf(verity.Invalid, op, "service name %q is %d bytes long, over %d", name, len(name), maxServiceLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return verity.Errorf(verity.Invalid, op, "service name %q: only lower-case letters, digits and '-' are allowed", name)
		}
	}
	if name[0] < 'a' || name[0] > 'z' {
		return verity.Errorf(verity.Invalid, op, "service name %q must start with a letter", name)
	}
	if name[len(name)-1] == '-' {
		return verity.Errorf(verity.Invalid, op, "service name %q must not end with '-'", name)
	}
	return nil
}

func validateID(op, id string) error {
	if id == "" {
		return verity.Errorf(verity.Invalid, op, "instance id is empty")
	}
	if len(id) > maxIDLen {
		return verity.Errorf(verity.Invalid, op, "instance id %q is %d bytes long, over %d", id, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return verity.Errorf(verity.Invalid, op, "instance id %q: only letters, digits and '.', '_', ':', '-' are allowed", id)
		}
	}
	if id == "." || id == ".." {
		// The HTTP API puts the id in a path (/instances/{id}/heartbeat), where a server
		// cleans these away: the instance could be registered but never renewed.
		return verity.Errorf(verity.Invalid, op, "instance id %q: a path segment of its own; use another id", id)
	}
	return nil
}

// validateAddress accepts "host:port" (port 1 to 65535) or an absolute URL with a host.
func validateAddress(op, addr string) error {
	if addr == "" {
		return verity.Errorf(verity.Invalid, op, "address is empty")
	}
	if len(addr) > maxAddressLen {
		return verity.Errorf(verity.Invalid, op, "address of %d bytes is over %d", len(addr), maxAddressLen)
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return verity.Errorf(verity.Invalid, op, "address %q is not an absolute URL with a host", addr)
		}
		if p := u.Port(); p != "" {
			return validatePort(op, addr, p)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.ContainsAny(host, " /?#@") {
		return verity.Errorf(verity.Invalid, op, "address %q is neither host:port nor an absolute URL", addr)
	}
	return validatePort(op, addr, port)
}

func validatePort(op, addr, port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return verity.Errorf(verity.Invalid, op, "address %q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}

func validateText(op, what, s string, max int) error {
	if len(s) > max {
		return verity.Errorf(verity.Invalid, op, "%s of %d bytes is over %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return verity.Errorf(verity.Invalid, op, "%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return verity.Errorf(verity.Invalid, op, "%s %q holds a control character", what, s)
		}
	}
	return nil
}

func validateHealth(op string, h Health) error {
	if h != Healthy && h != Unhealthy {
		return verity.Errorf(verity.Invalid, op, "health %q is neither %q nor %q", h, Healthy, Unhealthy)
	}
	return nil
}

// normalize checks an instance given to Register and fills its defaults (a generated ID,
// Healthy). It returns a copy that shares nothing with in.
func normalize(op string, in Instance) (Instance, error) {
	in = in.clone()
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	if in.Health == "" {
		in.Health = Healthy
	}
	if err := ValidateService(op, in.Service); err != nil {
		return Instance{}, err
	}
	if err := validateID(op, in.ID); err != nil {
		return Instance{}, err
	}
	if err := validateAddress(op, in.Address); err != nil {
		return Instance{}, err
	}
	if err := validateText(op, "version", in.Version, maxVersionLen); err != nil {
		return Instance{}, err
	}
	if err := validateHealth(op, in.Health); err != nil {
		return Instance{}, err
	}
	if err := validateText(op, "health reason", in.HealthReason, maxReasonBytes); err != nil {
		return Instance{}, err
	}
	if len(in.Metadata) > maxMetaKeys {
		return Instance{}, verity.Errorf(verity.Invalid, op, "metadata has %d keys, over %d", len(in.Metadata), maxMetaKeys)
	}
	for k, v := range in.Metadata {
		if k == "" {
			return Instance{}, verity.Errorf(verity.Invalid, op, "metadata has an empty key")
		}
		if err := validateText(op, "metadata key", k, maxMetaKeyLen); err != nil {
			return Instance{}, err
		}
		if err := validateText(op, "metadata value of "+strconv.Quote(k), v, maxMetaValLen); err != nil {
			return Instance{}, err
		}
	}
	if len(in.Metadata) == 0 {
		in.Metadata = nil
	}
	in.Registered = time.Time{}
	return in, nil
}
