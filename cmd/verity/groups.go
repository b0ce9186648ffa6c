package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/protocol/httpapi"
)

// groupsStoreAbout is the paragraph of every groups action's --help on where groups live.
const groupsStoreAbout = `
Groups live in a server: give it with --server URL (or VERITY_SERVER), as for append, read
and tail: http://HOST:PORT or HOST:PORT for plaintext (e.g. 'verity dev'), https://HOST:PORT
for TLS, with --user NAME and VERITY_PASSWORD, or VERITY_TOKEN, for credentials. With
--data DIR instead, the action works on the groups kept in that data directory, which no
server may hold open at the time.`

const groupsAbout = `
Manage consumer groups (persistent subscriptions) and consume from them. A group is named
by its source, a stream or "$all" for the whole log, and its name; the server keeps its
checkpoint and shares its events among its consumers.

Actions:
  list [STREAM]                 the groups of STREAM, of the log ($all), or every group
  info STREAM GROUP             a group's settings, state and consumers
  create STREAM GROUP           create a group (settings as flags)
  update STREAM GROUP           change the settings given, keeping the others
  delete STREAM GROUP           delete a group, its checkpoint and parked events
  replay-parked STREAM GROUP    put parked events back in line
  consume STREAM GROUP          join as a consumer: print and ack (or nack) each event
` + groupsStoreAbout + `

Run 'verity groups ACTION --help' for the flags of an action.

Examples:
  verity groups create --server http://127.0.0.1:2113 order-1 billing --strategy pinned
  verity groups list --server http://127.0.0.1:2113
  verity groups consume --server http://127.0.0.1:2113 order-1 billing --count 10
`

// groupsAction is one action of `verity groups`.
type groupsAction struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// groupsActions is the dispatch table of `verity groups`, in the order its help lists them.
var groupsActions = []groupsAction{
	{"list", groupsList},
	{"info", groupsInfo},
	{"create", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return groupsDefine(ctx, "create", args, stdout, stderr)
	}},
	{"update", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return groupsDefine(ctx, "update", args, stdout, stderr)
	}},
	{"delete", groupsDelete},
	{"replay-parked", groupsReplayParked},
	{"consume", groupsConsume},
}

func groupsActionNames() string {
	names := make([]string, len(groupsActions))
	for i, a := range groupsActions {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

// runGroups is `verity groups ACTION ...`: it dispatches to the action. The action comes
// first, so that each action has flags of its own.
func runGroups(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("groups", "missing ACTION: want one of %s", groupsActionNames())
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			// `verity groups help ACTION` is `verity groups ACTION --help`.
			return runGroups(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fs := newFlagSet("groups", "verity groups ACTION [flags] [arguments]", groupsAbout)
		addStoreFlags(fs)
		fs.printUsage(stdout)
		return flag.ErrHelp
	}
	for _, a := range groupsActions {
		if a.name == name {
			return a.run(ctx, rest, stdout, stderr)
		}
	}
	if strings.HasPrefix(name, "-") {
		return usagef("groups", "give the action before the flags (verity groups ACTION [flags] ...): want one of %s, got %q", groupsActionNames(), name)
	}
	return usagef("groups", "unknown action %q: want one of %s", name, groupsActionNames())
}

// groupsTarget is the verity.Groups an action works on: the server's, through the client, or
// that of the local data directory, run by a persistent.Manager over the engine for the
// length of the command.
type groupsTarget struct {
	verity.Groups
	st      *commandStore
	manager *persistent.Manager // nil for a server
}

// openGroups opens the groups the store flags name; see groupsTarget.
func openGroups(f *storeFlags, stderr io.Writer) (*groupsTarget, error) {
	st, err := f.open(false, stderr)
	if err != nil {
		return nil, err
	}
	if st.remote != nil {
		c, ok := st.Store.(*client.Client)
		if !ok {
			st.Close()
			return nil, fmt.Errorf("internal error: the store of --server is a %T, not a client", st.Store)
		}
		return &groupsTarget{Groups: c, st: st}, nil
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := persistent.New(st.Store, persistent.Config{Logger: logger})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &groupsTarget{Groups: m, st: st, manager: m}, nil
}

// finish closes the groups and the store and returns err, the action's result, explained
// for a server and prefixed with its kind (see kindError), joined with the errors of closing.
func (g *groupsTarget) finish(err error) error {
	err = withKind(g.st.explain(err))
	if g.manager != nil {
		// Before the engine: the manager writes the groups' checkpoints as it closes.
		err = errors.Join(err, g.manager.Close())
	}
	return errors.Join(err, g.st.Close())
}

// kindError shows the kind of a Verity error in front of its message, e.g.
// "not_found: get group: ...", so that a server's answer says what sort of failure it is.
type kindError struct {
	kind verity.ErrorKind
	err  error
}

func (e *kindError) Error() string { return e.kind.String() + ": " + e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// withKind wraps a *verity.Error in a kindError; it returns other errors unchanged.
func withKind(err error) error {
	var ve *verity.Error
	if err == nil || !errors.As(err, &ve) {
		return err
	}
	return &kindError{kind: ve.Kind, err: err}
}

// groupSource reads the STREAM argument of an action: "$all" names the log.
func groupSource(s string) string {
	if s == "" {
		return verity.AllStream
	}
	return s
}

// groupArgs checks that pos is STREAM GROUP.
func groupArgs(cmd string, pos []string) (stream, group string, err error) {
	switch {
	case len(pos) < 2:
		return "", "", usagef(cmd, "want STREAM GROUP (STREAM being a stream or $all), got %d argument(s)", len(pos))
	case len(pos) > 2:
		return "", "", usagef(cmd, "too many arguments: want STREAM GROUP, got %q", pos)
	case pos[1] == "":
		return "", "", usagef(cmd, "the GROUP name is empty")
	}
	return groupSource(pos[0]), pos[1], nil
}

const groupsListAbout = `
List consumer groups: those of STREAM, those of the log when STREAM is "$all", or every
group when STREAM is omitted, ordered by source then name, as a table:
  SOURCE GROUP STRATEGY STATUS CONSUMERS IN-FLIGHT PARKED LAG CHECKPOINT
CHECKPOINT is "-" until the group has written one. With --json each group is a JSON object on
its own line, as 'verity groups info --json' prints it.
` + groupsStoreAbout + `

Examples:
  verity groups list --server http://127.0.0.1:2113
  verity groups list --server http://127.0.0.1:2113 '$all'
  verity groups list --server http://127.0.0.1:2113 order-1 --json
`

func groupsList(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "groups list"
	fs := newFlagSet(cmd, "verity groups list [flags] [STREAM]", groupsListAbout)
	stores := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print each group as a JSON object on its own line")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef(cmd, "too many arguments: want at most one STREAM, got %q", pos)
	}
	stream := "" // every group
	if len(pos) == 1 {
		stream = groupSource(pos[0])
	}

	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	infos, err := g.ListGroups(ctx, stream)
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		where := "no consumer groups"
		if stream != "" {
			where += " on " + stream
		}
		fmt.Fprintf(stderr, "verity: %s\n", where)
		return nil
	}
	if *asJSON {
		enc := newJSONEncoder(stdout)
		for _, info := range infos {
			if err := enc.Encode(httpapi.GroupInfoJSON(info)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tGROUP\tSTRATEGY\tSTATUS\tCONSUMERS\tIN-FLIGHT\tPARKED\tLAG\tCHECKPOINT")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", i.Stream, i.Group, i.Settings.Strategy, i.Status,
			len(i.Consumers), i.InFlight, i.Parked, i.Lag, checkpointText(i))
	}
	return tw.Flush()
}

func checkpointText(i verity.GroupInfo) string {
	if !i.Checkpointed {
		return "-"
	}
	return strconv.FormatUint(i.Checkpoint, 10)
}

const groupsInfoAbout = `
Describe the group GROUP on STREAM ("$all" for the log): its filter, every setting (defaults
filled in), status, checkpoint, lag, counts of events in flight, waiting, parked, delivered,
acked, nacked and timed out, and its consumers. --json prints the same as one JSON object,
with the field names of the HTTP API (GET /subscriptions/STREAM/GROUP).
` + groupsStoreAbout + `

Examples:
  verity groups info --server http://127.0.0.1:2113 order-1 billing
  verity groups info --server http://127.0.0.1:2113 '$all' audit --json
`

func groupsInfo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "groups info"
	fs := newFlagSet(cmd, "verity groups info [flags] STREAM GROUP", groupsInfoAbout)
	stores := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print the group as one JSON object")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, group, err := groupArgs(cmd, pos)
	if err != nil {
		return err
	}

	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	info, err := g.GetGroup(ctx, stream, group)
	if err != nil {
		return err
	}
	if *asJSON {
		return newJSONEncoder(stdout).Encode(httpapi.GroupInfoJSON(info))
	}
	return printGroupInfo(stdout, info)
}

func printGroupInfo(w io.Writer, i verity.GroupInfo) error {
	s := i.Settings
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("source", i.Stream)
	row("group", i.Group)
	if i.Stream == verity.AllStream {
		row("filter", filterText(i.Filter))
	}
	row("status", i.Status)
	if i.Checkpointed {
		row("checkpoint", i.Checkpoint)
	} else {
		row("checkpoint", "none yet")
	}
	row("last known", i.LastKnown)
	row("lag", i.Lag)
	row("in flight", i.InFlight)
	row("waiting", i.Waiting)
	row("parked", i.Parked)
	row("delivered", i.Delivered)
	row("acked", i.Acked)
	row("nacked", i.Nacked)
	row("timed out", i.TimedOut)
	row("strategy", s.Strategy)
	if s.FromEnd {
		row("from", fmt.Sprintf("%d (the end at creation)", s.From))
	} else {
		row("from", s.From)
	}
	row("message timeout", timeoutText(s.MessageTimeout))
	if s.MaxRetryCount < 0 {
		row("max retry count", "0 (park at the first failure)")
	} else {
		row("max retry count", s.MaxRetryCount)
	}
	if s.MaxConsumers == 0 {
		row("max consumers", "no limit")
	} else {
		row("max consumers", s.MaxConsumers)
	}
	row("quarantine", s.Quarantine)
	row("live buffer size", s.LiveBufferSize)
	row("read batch size", s.ReadBatchSize)
	row("history buffer size", s.HistoryBufferSize)
	row("checkpoint after", s.CheckpointAfter)
	row("checkpoint lower bound", s.CheckpointLowerBound)
	row("checkpoint upper bound", s.CheckpointUpperBound)
	row("resolve links", s.ResolveLinks)
	row("extra statistics", s.ExtraStatistics)
	row("consumers", len(i.Consumers))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(i.Consumers) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tNAME\tMAX-IN-FLIGHT\tIN-FLIGHT\tDELIVERED\tACKED\tNACKED\tCONNECTED")
	for _, c := range i.Consumers {
		name := c.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", c.ID, name, c.MaxInFlight, c.InFlight,
			c.Delivered, c.Acked, c.Nacked, c.Connected.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func timeoutText(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.String()
}

// filterText renders a log group's filter as the flags that would create it.
func filterText(f verity.Filter) string {
	if f.IsZero() {
		return "none (every event)"
	}
	var parts []string
	list := func(flag string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, "--"+flag+" "+strings.Join(vs, ","))
		}
	}
	list("category", f.Categories)
	list("event-type", f.EventTypes)
	list("type-prefix", f.EventTypePrefixes)
	list("stream-prefix", f.StreamPrefixes)
	if f.StreamRegexp != "" {
		parts = append(parts, "--stream-regexp "+strconv.Quote(f.StreamRegexp))
	}
	if f.EventTypeRegexp != "" {
		parts = append(parts, "--type-regexp "+strconv.Quote(f.EventTypeRegexp))
	}
	if f.ExcludeSystemEvents {
		parts = append(parts, "--exclude-system")
	}
	return strings.Join(parts, " ")
}

const groupsCreateAbout = `
Create the group GROUP on STREAM, or on the whole log when STREAM is "$all", and start it.
Settings not given take their defaults. A group on $all may take a filter (--category,
--event-type, ...): only the events it selects are delivered; a group on a stream takes none.
` + groupsStoreAbout + `

Examples:
  verity groups create --server http://127.0.0.1:2113 order-1 billing --strategy pinned
  verity groups create --server http://127.0.0.1:2113 '$all' audit --category order --from-end
  verity groups create --server http://127.0.0.1:2113 order-1 mailer --max-retry 3 --message-timeout 10s
`

const groupsUpdateAbout = `
Change the settings given of the group GROUP on STREAM ("$all" for the log); the others keep
their current values, and so do its source, name, filter and checkpoint. Its consumers are
disconnected, to join again, and their unacknowledged events are delivered again.
` + groupsStoreAbout + `

Examples:
  verity groups update --server http://127.0.0.1:2113 order-1 billing --strategy round-robin
  verity groups update --server http://127.0.0.1:2113 order-1 billing --max-consumers 4 --quarantine off
`

// settingsFlags are the flags of create and update that shape a group.
type settingsFlags struct {
	fs             *flagSet
	strategy       string
	from           fromFlag
	fromEnd        bool
	messageTimeout timeoutFlag
	maxRetry       int
	maxConsumers   int
	quarantine     string
	// The filter of a log group, as read and tail name its flags.
	categories, types, typePrefixes, streamPrefixes listFlag
	streamRegexp, typeRegexp                        string
	excludeSystem                                   bool
}

func addSettingsFlags(fs *flagSet) *settingsFlags {
	f := &settingsFlags{fs: fs}
	fs.StringVar(&f.strategy, "strategy", "", "how events are shared among consumers: `NAME` round-robin (default),\ndispatch-to-single, pinned (each stream's events to one consumer, in order)\nor pinned-by-correlation")
	fs.Var(&f.from, "from", "where to start while the group has no checkpoint: `start|end|N`, N being a\nrevision (stream) or a position ($all); end delivers only events appended\nafter the group's creation (default start)")
	fs.BoolVar(&f.fromEnd, "from-end", false, "the same as --from end")
	fs.Var(&f.messageTimeout, "message-timeout", "deliver an event again when it is not acked within `DURATION` (e.g. 30s,\n2m), counting a retry; 0 or never: never (default 30s)")
	fs.IntVar(&f.maxRetry, "max-retry", 0, "park an event after `N` retries; 0 parks at the first failure (default 10)")
	fs.IntVar(&f.maxConsumers, "max-consumers", 0, "the most consumers connected at once, `N`; 0 means no limit")
	fs.StringVar(&f.quarantine, "quarantine", "", "whether a parked event holds back the later events of its stream: `MODE`\nordered, off, or default (ordered for the pinned strategies, else off)")
	fs.Var(&f.categories, "category", "$all only: only events of streams in this `CATEGORY`; repeatable or\ncomma-separated")
	fs.Var(&f.types, "event-type", "$all only: only events of this `TYPE`; repeatable or comma-separated")
	fs.Var(&f.types, "type", "the same as --event-type (`TYPE`), as read and tail name it")
	fs.Var(&f.typePrefixes, "type-prefix", "$all only: only events whose type starts with `PREFIX`; repeatable")
	fs.Var(&f.streamPrefixes, "stream-prefix", "$all only: only events of streams whose name starts with `PREFIX`;\nrepeatable")
	fs.StringVar(&f.streamRegexp, "stream-regexp", "", "$all only: only events of streams whose name matches `RE` (RE2 syntax)")
	fs.StringVar(&f.typeRegexp, "type-regexp", "", "$all only: only events whose type matches `RE` (RE2 syntax)")
	fs.BoolVar(&f.excludeSystem, "exclude-system", false, "$all only: leave out system events (type starting with '$')")
	return f
}

func (f *settingsFlags) given(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

func (f *settingsFlags) filter() verity.Filter {
	return verity.Filter{
		StreamPrefixes:      f.streamPrefixes,
		Categories:          f.categories,
		StreamRegexp:        f.streamRegexp,
		EventTypes:          f.types,
		EventTypePrefixes:   f.typePrefixes,
		EventTypeRegexp:     f.typeRegexp,
		ExcludeSystemEvents: f.excludeSystem,
	}
}

// apply checks the flags and sets those given on s; a bad value is a usage error of cmd.
func (f *settingsFlags) apply(cmd string, s *verity.GroupSettings) error {
	if f.from.set && f.fromEnd {
		return usagef(cmd, "give either --from %s or --from-end, not both", f.from.String())
	}
	if f.given("strategy") {
		st, err := verity.ParseConsumerStrategy(f.strategy)
		if err != nil {
			return usagef(cmd, "--strategy %q: want round-robin, dispatch-to-single, pinned or pinned-by-correlation", f.strategy)
		}
		s.Strategy = st
	}
	if f.given("quarantine") {
		q, err := verity.ParseQuarantineMode(f.quarantine)
		if err != nil {
			return usagef(cmd, "--quarantine %q: want ordered, off or default", f.quarantine)
		}
		s.Quarantine = q
	}
	switch {
	case f.fromEnd || f.from.end:
		s.FromEnd = true
	case f.from.set:
		s.From, s.FromEnd = f.from.n, false // n is 0 for start
	}
	if f.given("message-timeout") {
		s.MessageTimeout = f.messageTimeout.d
	}
	if f.given("max-retry") {
		switch {
		case f.maxRetry < 0:
			return usagef(cmd, "--max-retry %d is negative; 0 parks an event at its first failure", f.maxRetry)
		case f.maxRetry == 0:
			s.MaxRetryCount = -1 // the contract's "zero, not the default"
		default:
			s.MaxRetryCount = f.maxRetry
		}
	}
	if f.given("max-consumers") {
		if f.maxConsumers < 0 {
			return usagef(cmd, "--max-consumers %d is negative; 0 means no limit", f.maxConsumers)
		}
		s.MaxConsumers = f.maxConsumers
	}
	return nil
}

// timeoutFlag is --message-timeout: a duration, with 0 or "never" meaning never (the
// contract's negative value).
type timeoutFlag struct{ d time.Duration }

func (f *timeoutFlag) String() string {
	if f == nil || f.d == 0 {
		return ""
	}
	return timeoutText(f.d)
}

func (f *timeoutFlag) Set(s string) error {
	if s == "never" {
		f.d = -1
		return nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return fmt.Errorf("want a duration such as 30s or 2m, or never")
	case d < 0:
		return fmt.Errorf("a negative timeout; want a duration such as 30s, or never")
	case d == 0:
		d = -1
	}
	f.d = d
	return nil
}

// groupsDefine is `verity groups create` and `verity groups update`.
func groupsDefine(ctx context.Context, action string, args []string, stdout, stderr io.Writer) (err error) {
	cmd := "groups " + action
	about := groupsCreateAbout
	if action == "update" {
		about = groupsUpdateAbout
	}
	fs := newFlagSet(cmd, "verity "+cmd+" [flags] STREAM GROUP", about)
	stores := addStoreFlags(fs)
	settings := addSettingsFlags(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, group, err := groupArgs(cmd, pos)
	if err != nil {
		return err
	}
	spec := verity.GroupSpec{Stream: stream, Group: group, Filter: settings.filter()}
	switch {
	case action == "update" && !spec.Filter.IsZero():
		return usagef(cmd, "a group's filter cannot be changed: delete the group and create it again")
	case stream != verity.AllStream && !spec.Filter.IsZero():
		return usagef(cmd, "the filter flags apply to groups on $all only, not to stream %q", stream)
	}
	if _, err := spec.Filter.Compile(); err != nil {
		return &usageError{cmd: cmd, err: err}
	}
	// Checked once here, so that bad flags fail before the server is asked; update applies
	// them again over the group's current settings.
	if err := settings.apply(cmd, &spec.Settings); err != nil {
		return err
	}

	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	if action == "create" {
		if err := g.CreateGroup(ctx, spec); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created group %q on %s\n", group, stream)
		return nil
	}
	// UpdateGroup replaces every setting: start from the current ones.
	info, err := g.GetGroup(ctx, stream, group)
	if err != nil {
		return err
	}
	spec.Settings = info.Settings
	// The stored From is where FromEnd was resolved to at creation; asking for FromEnd again
	// would move it to today's end.
	spec.Settings.FromEnd = false
	if err := settings.apply(cmd, &spec.Settings); err != nil {
		return err
	}
	if err := g.UpdateGroup(ctx, spec); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "updated group %q on %s\n", group, stream)
	return nil
}

const groupsDeleteAbout = `
Delete the group GROUP on STREAM ("$all" for the log), with its checkpoint and parked events.
Its consumers are disconnected.
` + groupsStoreAbout + `

Examples:
  verity groups delete --server http://127.0.0.1:2113 order-1 billing
`

func groupsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "groups delete"
	fs := newFlagSet(cmd, "verity groups delete [flags] STREAM GROUP", groupsDeleteAbout)
	stores := addStoreFlags(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, group, err := groupArgs(cmd, pos)
	if err != nil {
		return err
	}
	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	if err := g.DeleteGroup(ctx, stream, group); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted group %q on %s\n", group, stream)
	return nil
}

const groupsReplayAbout = `
Put the parked events of the group GROUP on STREAM ("$all" for the log) back in line, oldest
first, to be delivered before new events: all of them, or at most --limit. They stay in the
parked stream's history.
` + groupsStoreAbout + `

Examples:
  verity groups replay-parked --server http://127.0.0.1:2113 order-1 billing
  verity groups replay-parked --server http://127.0.0.1:2113 order-1 billing --limit 10
`

func groupsReplayParked(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "groups replay-parked"
	fs := newFlagSet(cmd, "verity groups replay-parked [flags] STREAM GROUP", groupsReplayAbout)
	stores := addStoreFlags(fs)
	limit := fs.Int("limit", 0, "put at most `N` parked events back in line; 0 means all")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, group, err := groupArgs(cmd, pos)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef(cmd, "--limit %d is negative; 0 means all", *limit)
	}
	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	// The count is only for the message: the group parks and replays concurrently.
	info, err := g.GetGroup(ctx, stream, group)
	if err != nil {
		return err
	}
	if err := g.ReplayParked(ctx, stream, group, verity.ReplayParkedOptions{Limit: *limit}); err != nil {
		return err
	}
	n := info.Parked
	if *limit > 0 && *limit < n {
		n = *limit
	}
	fmt.Fprintf(stdout, "put %d parked event(s) of group %q on %s back in line\n", n, group, stream)
	return nil
}

const groupsConsumeAbout = `
Join the group GROUP on STREAM ("$all" for the log) as a consumer and print each event it
delivers, in the format of 'verity tail' (--json as well), then ack it, or nack it with
--nack. It stops after --count events, or when interrupted (Ctrl-C); an event printed is
acked (or nacked) even when Ctrl-C comes in between. Useful to look at what a group delivers,
and to drain it.
` + groupsStoreAbout + `

Examples:
  verity groups consume --server http://127.0.0.1:2113 order-1 billing
  verity groups consume --server http://127.0.0.1:2113 order-1 billing --count 1 --nack park
  verity groups consume --server http://127.0.0.1:2113 '$all' audit --json --max-in-flight 50
`

// answerTimeout bounds an ack or nack of an event already printed, which outlives Ctrl-C.
const answerTimeout = 10 * time.Second

func groupsConsume(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "groups consume"
	fs := newFlagSet(cmd, "verity groups consume [flags] STREAM GROUP", groupsConsumeAbout)
	stores := addStoreFlags(fs)
	maxInFlight := fs.Int("max-in-flight", 0, "the most events delivered and not yet answered, `N` (default 10;\nwith --count, at most that)")
	count := fs.Int("count", 0, "stop after `N` events; 0 means run until interrupted")
	nack := fs.String("nack", "", "nack each event instead of acking it, with `ACTION` park (to the parked\nevents), retry (deliver again, counting a retry) or skip (as if handled)")
	name := fs.String("name", "verity groups consume", "the consumer's `NAME`, as 'verity groups info' shows it")
	asJSON := fs.Bool("json", false, "print each event as a JSON object on its own line")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, group, err := groupArgs(cmd, pos)
	if err != nil {
		return err
	}
	switch {
	case *maxInFlight < 0:
		return usagef(cmd, "--max-in-flight %d is negative", *maxInFlight)
	case *count < 0:
		return usagef(cmd, "--count %d is negative; 0 means run until interrupted", *count)
	}
	var action verity.NackAction
	if *nack != "" {
		if action, err = verity.ParseNackAction(*nack); err != nil || action == verity.NackStop {
			return usagef(cmd, "--nack %q: want park, retry or skip", *nack)
		}
	}

	g, err := openGroups(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = g.finish(err) }()
	// With --count, take no more events than will be answered: those left in flight at
	// Close would go back in line counting a retry, and in the end be parked.
	inFlight := *maxInFlight
	if inFlight == 0 {
		inFlight = verity.DefaultMaxInFlight
	}
	if *count > 0 && *count < inFlight {
		inFlight = *count
	}
	c, err := g.JoinGroup(ctx, stream, group, verity.JoinOptions{MaxInFlight: inFlight, Name: *name})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer c.Close()
	doing, done := "acking each event", "acked"
	if action != 0 {
		doing, done = "nacking each event with "+action.String(), "nacked ("+action.String()+")"
	}
	fmt.Fprintf(stderr, "verity: joined group %q on %s; %s (Ctrl-C to stop)\n", group, stream, doing)
	n, err := consume(ctx, c, action, *count, newEventPrinter(stdout, *asJSON))
	fmt.Fprintf(stderr, "verity: %d event(s) %s\n", n, done)
	return err
}

// consume prints and answers the events of c until count (0: no limit) were answered or ctx
// ends, which is a normal end. It returns how many events it answered.
func consume(ctx context.Context, c verity.GroupConsumer, action verity.NackAction, count int, p *eventPrinter) (int, error) {
	n := 0
	for count == 0 || n < count {
		m, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
		if err := p.print(m.Event); err != nil {
			return n, err
		}
		if err := answerEvent(ctx, c, action, m.Event.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// answerEvent acks or nacks an event that was printed. Its context outlives ctx's
// cancellation: what was shown as handled should not come back.
func answerEvent(ctx context.Context, c verity.GroupConsumer, action verity.NackAction, id uuid.UUID) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), answerTimeout)
	defer cancel()
	if action == 0 {
		return c.Ack(actx, id)
	}
	return c.Nack(actx, action, "nacked with verity groups consume", id)
}

func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
