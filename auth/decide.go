package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/verity-dev/verity"
)

// Check decides whether p may do a to stream, and returns nil or the refusal: Unauthenticated
// for an anonymous caller, PermissionDenied otherwise, with Op and Stream set; a refusal is
// counted (Denied, Config.OnDenied). Reading or writing a metadata stream "$$x" is checked as
// metadata access on x. The stream's $acl is read from the store on every call, so a changed
// ACL applies to the next call. Errors other than refusals are the store's (reading the ACL)
// or the context's.
//
// The rules, in order:
//   - admins may do everything;
//   - system ("$") streams are for admins; $ops may also read them (but not UsersStream);
//   - a user named by a Rule may do only what their rules grant, and a stream's $acl may
//     narrow that further;
//   - anyone else: the stream's $acl for the action when it lists anyone, else
//     Config.DefaultAccess for authenticated users and nothing for anonymous ones.
func (s *Service) Check(ctx context.Context, op string, p Principal, a Action, stream string) error {
	if s.cfg.Insecure || p.IsAdmin() {
		return nil // admins skip even the $acl lookup
	}
	act, target := metadataTarget(a, stream)
	ok, err := s.allowed(ctx, p, act, target)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return s.deny(op, p, act, stream, fmt.Sprintf("stream %q", target))
}

// metadataTarget maps access to a metadata stream "$$x" onto metadata access to x.
func metadataTarget(a Action, stream string) (Action, string) {
	of, ok := verity.IsMetadataStream(stream)
	if !ok {
		return a, stream
	}
	if a == Read || a == MetadataRead {
		return MetadataRead, of
	}
	return MetadataWrite, of
}

func (s *Service) allowed(ctx context.Context, p Principal, a Action, stream string) (bool, error) {
	if p.IsAdmin() {
		return true, nil
	}
	if verity.IsSystemStream(stream) {
		return p.HasRole(RoleOps) && (a == Read || a == MetadataRead) && stream != UsersStream, nil
	}
	limited, granted := s.byRules(p, func(r Rule) bool { return r.grants(a, stream) })
	if limited && !granted {
		return false, nil // no ACL can widen what the rules allow
	}
	acl, err := s.aclFor(ctx, stream, a)
	if err != nil {
		return false, err
	}
	if len(acl) > 0 {
		return aclAllows(acl, p), nil
	}
	if limited {
		return true, nil
	}
	return !p.Anonymous() && slices.Contains(s.cfg.DefaultAccess, a), nil
}

// byRules reports whether any rule names p (limited), and whether one of those rules
// satisfies ok.
func (s *Service) byRules(p Principal, ok func(Rule) bool) (limited, granted bool) {
	for _, r := range s.cfg.Rules {
		if r.names(p) {
			limited = true
			if ok(r) {
				return true, true
			}
		}
	}
	return limited, false
}

// aclFor returns the $acl entries of stream for action a, nil when none are set.
func (s *Service) aclFor(ctx context.Context, stream string, a Action) ([]string, error) {
	res, err := s.store.GetStreamMetadata(ctx, stream)
	switch verity.KindOf(err) {
	case verity.NotFound, verity.Deleted:
		return nil, nil // no metadata: the store answers for the stream itself
	}
	if err != nil {
		return nil, err
	}
	acl := res.Metadata.ACL
	if acl == nil {
		return nil, nil
	}
	switch a {
	case Read:
		return acl.Read, nil
	case Write:
		return acl.Write, nil
	case Delete:
		return acl.Delete, nil
	case MetadataRead:
		return acl.MetaRead, nil
	case MetadataWrite:
		return acl.MetaWrite, nil
	}
	return nil, nil
}

// aclAllows reports whether an $acl list names p: by user name, by one of p's roles, or
// through $all (everyone, anonymous callers too).
func aclAllows(list []string, p Principal) bool {
	for _, e := range list {
		if e == RoleAll || (!p.Anonymous() && (e == p.Name || p.HasRole(e))) {
			return true
		}
	}
	return false
}

func (s *Service) deny(op string, p Principal, a Action, stream, what string) error {
	s.denied.Add(1)
	if s.cfg.OnDenied != nil {
		s.cfg.OnDenied(p, a, stream)
	}
	if p.Anonymous() {
		return &verity.Error{Kind: verity.Unauthenticated, Op: op, Stream: stream,
			Message: fmt.Sprintf("authentication required to %s %s", a.verb(), what)}
	}
	return &verity.Error{Kind: verity.PermissionDenied, Op: op, Stream: stream,
		Message: fmt.Sprintf("user %q may not %s %s", p.Name, a.verb(), what)}
}

// CheckAll decides whether p may read or subscribe to the log ($all) through filter f.
// Admins may read it all. Others may when f restricts the log to categories or stream
// prefixes whose every stream they may read by their rules or Config.DefaultAccess; the
// events are then further sifted per stream by Sift (a stream's $acl may still hide it).
// Refusals are as for Check, on stream "$all".
func (s *Service) CheckAll(op string, p Principal, f verity.Filter) error {
	if s.cfg.Insecure || p.IsAdmin() {
		return nil
	}
	if !p.Anonymous() && s.covers(p, f) {
		return nil
	}
	return s.deny(op, p, Read, verity.AllStream,
		fmt.Sprintf("stream %q without a filter restricted to categories or stream prefixes they may read", verity.AllStream))
}

// covers reports whether every stream f lets through is one p may read by rules or default
// access.
func (s *Service) covers(p Principal, f verity.Filter) bool {
	readable := func(nonSystem bool, byRule func(Rule) bool) bool {
		if !nonSystem {
			return false
		}
		limited, granted := s.byRules(p, func(r Rule) bool { return slices.Contains(r.Actions, Read) && byRule(r) })
		if limited {
			return granted
		}
		return slices.Contains(s.cfg.DefaultAccess, Read)
	}
	all := func(list []string, one func(string) bool) bool {
		if len(list) == 0 {
			return false
		}
		for _, x := range list {
			if !one(x) {
				return false
			}
		}
		return true
	}
	if all(f.Categories, func(c string) bool {
		return readable(c != "" && !strings.HasPrefix(c, "$"), func(r Rule) bool { return r.coversCategory(c) })
	}) {
		return true
	}
	return all(f.StreamPrefixes, func(pre string) bool {
		return readable(pre != "" && !strings.HasPrefix(pre, "$"), func(r Rule) bool { return r.coversPrefix(pre) })
	})
}

// sifter decides, event by event, whether a caller reading the log may see an event's
// stream. It remembers its answers for one read (or a short while of a subscription).
type sifter struct {
	s     *Service
	p     Principal
	cache map[string]bool
}

func (s *Service) newSifter(p Principal) *sifter {
	if s.cfg.Insecure || p.IsAdmin() {
		return nil
	}
	return &sifter{s: s, p: p, cache: map[string]bool{}}
}

// visible reports whether the event's stream may be read. A nil sifter lets all through.
func (f *sifter) visible(ctx context.Context, stream string) (bool, error) {
	if f == nil {
		return true, nil
	}
	if ok, hit := f.cache[stream]; hit {
		return ok, nil
	}
	a, target := metadataTarget(Read, stream)
	ok, err := f.s.allowed(ctx, f.p, a, target)
	if err != nil {
		return false, err
	}
	if len(f.cache) >= 10_000 {
		clear(f.cache)
	}
	f.cache[stream] = ok
	return ok, nil
}

func (f *sifter) reset() {
	if f != nil {
		clear(f.cache)
	}
}
