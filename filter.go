package verity

import (
	"regexp"
	"strings"
)

// Filter selects events of the log by stream and event type, evaluated by the server. Every
// field that is set must match (AND); within a list, any entry may match (OR). The zero
// Filter selects every event.
type Filter struct {
	// StreamPrefixes: the stream name starts with one of these.
	StreamPrefixes []string
	// Categories: the stream's category (the name before its first '-') is one of these.
	// Served from the category index: the cost follows what is returned, not the log.
	Categories []string
	// StreamRegexp: the stream name matches this regular expression (RE2 syntax).
	StreamRegexp string
	// EventTypes: the event type is one of these. Served from the event type index.
	EventTypes []string
	// EventTypePrefixes: the event type starts with one of these.
	EventTypePrefixes []string
	// EventTypeRegexp: the event type matches this regular expression (RE2 syntax).
	EventTypeRegexp string
	// ExcludeSystemEvents leaves out events whose type starts with "$".
	ExcludeSystemEvents bool
}

// IsZero reports whether the filter selects everything.
func (f Filter) IsZero() bool {
	return len(f.StreamPrefixes) == 0 && len(f.Categories) == 0 && f.StreamRegexp == "" &&
		len(f.EventTypes) == 0 && len(f.EventTypePrefixes) == 0 && f.EventTypeRegexp == "" &&
		!f.ExcludeSystemEvents
}

// Matcher is a compiled Filter. Its zero value matches everything.
type Matcher struct {
	f        Filter
	streamRE *regexp.Regexp
	typeRE   *regexp.Regexp
	all      bool
}

// Compile checks the filter and prepares it for matching; a bad regular expression is
// Invalid.
func (f Filter) Compile() (*Matcher, error) {
	m := &Matcher{f: f, all: f.IsZero()}
	var err error
	if f.StreamRegexp != "" {
		if m.streamRE, err = regexp.Compile(f.StreamRegexp); err != nil {
			return nil, Errorf(Invalid, "filter", "stream regular expression %q: %v", f.StreamRegexp, err)
		}
	}
	if f.EventTypeRegexp != "" {
		if m.typeRE, err = regexp.Compile(f.EventTypeRegexp); err != nil {
			return nil, Errorf(Invalid, "filter", "event type regular expression %q: %v", f.EventTypeRegexp, err)
		}
	}
	return m, nil
}

// Filter returns the filter the matcher was compiled from.
func (m *Matcher) Filter() Filter {
	if m == nil {
		return Filter{}
	}
	return m.f
}

// MatchesAll reports whether the matcher selects every event.
func (m *Matcher) MatchesAll() bool { return m == nil || m.all }

// Match reports whether an event of this stream and type passes the filter.
func (m *Matcher) Match(stream, eventType string) bool {
	if m == nil || m.all {
		return true
	}
	f := &m.f
	if f.ExcludeSystemEvents && strings.HasPrefix(eventType, "$") {
		return false
	}
	if len(f.StreamPrefixes) > 0 && !hasAnyPrefix(stream, f.StreamPrefixes) {
		return false
	}
	if len(f.Categories) > 0 && !contains(f.Categories, Category(stream)) {
		return false
	}
	if m.streamRE != nil && !m.streamRE.MatchString(stream) {
		return false
	}
	if len(f.EventTypes) > 0 && !contains(f.EventTypes, eventType) {
		return false
	}
	if len(f.EventTypePrefixes) > 0 && !hasAnyPrefix(eventType, f.EventTypePrefixes) {
		return false
	}
	if m.typeRE != nil && !m.typeRE.MatchString(eventType) {
		return false
	}
	return true
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
