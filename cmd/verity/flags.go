package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// defaultDataDir is where commands look for the data directory when --data is not given.
const defaultDataDir = "./verity-data"

// usageError is a wrong command line (unknown flag, bad flag value, missing argument). main
// reports it with exit code 2; every other error means the command ran and failed (exit 1).
type usageError struct {
	cmd string // the subcommand, for the "Run 'verity CMD --help'" hint
	err error
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.err.Error()
	}
	return e.cmd + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError of command cmd.
func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// flagSet is a subcommand's flags with the text its --help prints.
type flagSet struct {
	*flag.FlagSet
	synopsis string // e.g. "verity read [flags] [STREAM]"
	about    string // what the command does, a few lines
}

func newFlagSet(name, synopsis, about string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print its own messages; parse reports them instead, so that a
	// usage error goes to stderr once and --help goes to stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, synopsis: synopsis, about: about}
}

// parse parses args and returns the positional arguments. Flags may come before, between or
// after positional arguments; "--" ends the flags. --help (or -h) prints the usage on stdout
// and returns flag.ErrHelp; any other problem is a *usageError.
func (fs *flagSet) parse(args []string, stdout io.Writer) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(stdout)
				return nil, flag.ErrHelp
			}
			return nil, &usageError{cmd: fs.Name(), err: err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// printUsage writes the synopsis, the description and every flag, GNU style (--name).
func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  %s\n\n%s\n", fs.synopsis, strings.TrimSpace(fs.about))
	fmt.Fprintf(w, "\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintln(w, line)
		usage = strings.ReplaceAll(usage, "\n", "\n        ")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "        %s\n", usage)
	})
	fmt.Fprintln(w, "  --help\n        print this help")
}

// dataFlag defines --data on fs.
func dataFlag(fs *flagSet) *string {
	return fs.String("data", defaultDataDir, "the data directory `DIR`")
}

// openEngine opens the embedded engine in dir, logging warnings and errors to stderr. Unless
// create is set, a missing dir is an error rather than a new, empty store: a mistyped --data
// should not quietly read nothing.
func openEngine(dir string, create bool, stderr io.Writer) (*engine.Engine, error) {
	if !create {
		if err := checkDataDir(dir); err != nil {
			return nil, err
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return engine.Open(engine.Config{Dir: dir, Logger: logger})
}

// checkDataDir fails with a clear message when dir is not an existing directory.
func checkDataDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data directory %q does not exist (nothing was appended there yet; is --data right?)", dir)
	case err != nil:
		return fmt.Errorf("data directory: %w", err)
	case !info.IsDir():
		return fmt.Errorf("data directory %q is not a directory", dir)
	}
	return nil
}

// expectedFlag is --expected: any, no-stream, exists or a revision number.
type expectedFlag struct{ v verity.ExpectedRevision }

func (f *expectedFlag) String() string {
	switch {
	case f == nil || f.v.IsAny():
		return "any"
	case f.v.IsNoStream():
		return "no-stream"
	case f.v.IsStreamExists():
		return "exists"
	}
	rev, _ := f.v.Revision()
	return strconv.FormatUint(rev, 10)
}

func (f *expectedFlag) Set(s string) error {
	switch s {
	case "any":
		f.v = verity.Any()
	case "no-stream":
		f.v = verity.NoStream()
	case "exists", "stream-exists":
		f.v = verity.StreamExists()
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want any, no-stream, exists or a revision number")
		}
		f.v = verity.Exact(n)
	}
	return nil
}

// fromFlag is --from: start, end or a number (a revision in a stream, a position in $all).
type fromFlag struct {
	set   bool
	end   bool
	start bool
	n     uint64
}

func (f *fromFlag) String() string {
	switch {
	case f == nil || !f.set:
		return ""
	case f.end:
		return "end"
	case f.start:
		return "start"
	}
	return strconv.FormatUint(f.n, 10)
}

func (f *fromFlag) Set(s string) error {
	*f = fromFlag{set: true}
	switch s {
	case "start":
		f.start = true
	case "end":
		f.end = true
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want start, end or a number")
		}
		f.n = n
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (f *listFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(*f, ",")
}

func (f *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*f = append(*f, v)
		}
	}
	return nil
}

// timeFlag is an RFC 3339 time.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2025-01-31T09:00:00Z")
	}
	f.t = t
	return nil
}
