package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verity-dev/verity/registry"
)

const servicesAbout = `
Show the service registry of a server: the instances that services announced (see
docs/registry.md), and their changes as they happen.

Actions:
  list [SERVICE]      the live instances of SERVICE, or of every service, healthy or not
  watch [SERVICE]     print the instances, then every change, until interrupted

The registry lives in a server: give it with --server URL (or VERITY_SERVER), e.g.
http://127.0.0.1:2113 for 'verity dev', with --user NAME and VERITY_PASSWORD, or
VERITY_TOKEN, for credentials (reading the registry needs read access to $registry: an
admin or an operator). 'list' also reads a data directory (--data) that no server holds
open, showing the instances its log last recorded.

Examples:
  verity services list --server http://127.0.0.1:2113
  verity services list --server http://127.0.0.1:2113 orders --json
  verity services watch --server http://127.0.0.1:2113 orders
`

// runServices is `verity services ACTION ...`.
func runServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	actions := []struct {
		name string
		run  func(context.Context, []string, io.Writer, io.Writer) error
	}{{"list", servicesList}, {"watch", servicesWatch}}
	if len(args) == 0 {
		return usagef("services", "missing ACTION: want list or watch")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			return runServices(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fs := newFlagSet("services", "verity services ACTION [flags] [SERVICE]", servicesAbout)
		addStoreFlags(fs)
		fs.printUsage(stdout)
		return flag.ErrHelp
	}
	for _, a := range actions {
		if a.name == name {
			return a.run(ctx, rest, stdout, stderr)
		}
	}
	if strings.HasPrefix(name, "-") {
		return usagef("services", "give the action before the flags (verity services ACTION [flags] ...): want list or watch, got %q", name)
	}
	return usagef("services", "unknown action %q: want list or watch", name)
}

// registrySource is where an action reads the registry: a client of the server, or a
// registry folded from a local data directory for the length of the command.
type registrySource interface {
	List(ctx context.Context, service string) ([]registry.Instance, error)
	Watch(ctx context.Context, service string) (registry.Watcher, error)
}

// openRegistry opens what the store flags name; close releases it.
func openRegistry(f *storeFlags, stderr io.Writer) (src registrySource, remote *remote, close func() error, err error) {
	r, err := f.resolve()
	if err != nil {
		return nil, nil, nil, err
	}
	if r == nil {
		e, err := openEngine(*f.data, false, stderr)
		if err != nil {
			return nil, nil, nil, err
		}
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		// No sweeps: this is a look at the log, not a registry that should expire anyone.
		reg, err := registry.New(e, registry.Config{SweepEvery: time.Hour, Logger: logger})
		if err != nil {
			return nil, nil, nil, errors.Join(err, e.Close())
		}
		return reg, nil, func() error { return errors.Join(reg.Close(), e.Close()) }, nil
	}
	if !r.secure && (r.opts.Password != "" || r.opts.Token != "") && !isLoopback(r.host) {
		fmt.Fprintf(stderr, "verity: warning: sending credentials in plaintext to %s; use https:// unless a TLS proxy is in between\n", r.url)
	}
	c, err := registry.NewClient(r.target, registry.ClientOptions{
		TLS: r.opts.TLS, Username: r.opts.Username, Password: r.opts.Password, Token: r.opts.Token,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, nil, nil, &usageError{cmd: f.cmd, err: err}
	}
	return c, r, c.Close, nil
}

// explainRegistry adds what to do to the errors of a server that cannot be reached or
// refused the credentials, and shows the kind of every Verity error.
func explainRegistry(r *remote, err error) error {
	if r != nil && err != nil {
		cs := &commandStore{remote: r}
		err = cs.explain(err)
	}
	return withKind(err)
}

func serviceArg(cmd string, pos []string) (string, error) {
	switch {
	case len(pos) > 1:
		return "", usagef(cmd, "too many arguments: want at most one SERVICE, got %q", pos)
	case len(pos) == 0:
		return "", nil
	}
	if err := registry.ValidateService(cmd, pos[0]); err != nil {
		return "", &usageError{cmd: cmd, err: errors.New(strings.TrimPrefix(err.Error(), cmd+": "))}
	}
	return pos[0], nil
}

func servicesList(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "services list"
	fs := newFlagSet(cmd, "verity services list [flags] [SERVICE]", `
List the live instances of SERVICE, or of every service, healthy or not, ordered by service
then id, as a table:
  SERVICE ID ADDRESS HEALTH VERSION REGISTERED REASON
With --json each instance is a JSON object on its own line, as the HTTP API returns it.
`+servicesAbout[strings.Index(servicesAbout, "The registry lives"):strings.Index(servicesAbout, "Examples:")]+`Examples:
  verity services list --server http://127.0.0.1:2113
  verity services list --server http://127.0.0.1:2113 orders --json
  verity services list --data ./verity-data
`)
	stores := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print each instance as a JSON object on its own line")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	service, err := serviceArg(cmd, pos)
	if err != nil {
		return err
	}
	src, r, closeSrc, err := openRegistry(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(explainRegistry(r, err), closeSrc()) }()
	ins, err := src.List(ctx, service)
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		what := "no service instances are registered"
		if service != "" {
			what = fmt.Sprintf("service %q has no instance", service)
		}
		fmt.Fprintf(stderr, "verity: %s\n", what)
		return nil
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, in := range ins {
			if err := enc.Encode(in); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tHEALTH\tVERSION\tREGISTERED\tREASON")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Service, in.ID, in.Address, in.Health,
			orDash(in.Version), in.Registered.UTC().Format(time.RFC3339), orDash(in.HealthReason))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func servicesWatch(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	const cmd = "services watch"
	fs := newFlagSet(cmd, "verity services watch [flags] [SERVICE]", `
Print the live instances of SERVICE (of every service when omitted), then every change as
the registry records it, one line each, until interrupted (Ctrl-C) or --count changes:
  snapshot SERVICE N instance(s)       then one "  instance" line per instance
  registered SERVICE/ID ADDRESS HEALTH
  removed SERVICE/ID REASON
  health-changed SERVICE/ID HEALTH REASON
A snapshot comes again when the connection to the server was lost and made again (or the
watch fell behind): it replaces what came before. With --json each change is a JSON object
on its own line, as the HTTP API sends it.
`+servicesAbout[strings.Index(servicesAbout, "The registry lives"):strings.Index(servicesAbout, " 'list' also")]+`

Examples:
  verity services watch --server http://127.0.0.1:2113 orders
  verity services watch --server http://127.0.0.1:2113 --json
`)
	stores := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print each change as a JSON object on its own line")
	count := fs.Int("count", 0, "stop after `N` changes (the first snapshot counts as one); 0: until interrupted")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	service, err := serviceArg(cmd, pos)
	if err != nil {
		return err
	}
	if *count < 0 {
		return usagef(cmd, "--count %d is negative", *count)
	}
	if r, err := stores.resolve(); err != nil {
		return err
	} else if r == nil {
		return usagef(cmd, "watch needs a server: give --server URL (or VERITY_SERVER); a data directory does not change while you watch it")
	}
	src, r, closeSrc, err := openRegistry(stores, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(explainRegistry(r, err), closeSrc()) }()
	w, err := src.Watch(ctx, service)
	if err != nil {
		return err
	}
	defer w.Close()
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for n := 0; *count == 0 || n < *count; n++ {
		c, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the normal end
			}
			return err
		}
		if *asJSON {
			if err := enc.Encode(c); err != nil {
				return err
			}
			continue
		}
		printChange(stdout, service, c)
	}
	return nil
}

func printChange(w io.Writer, service string, c registry.Change) {
	in := c.Instance
	switch c.Kind {
	case registry.ChangeSnapshot:
		what := service
		if what == "" {
			what = "(all services)"
		}
		fmt.Fprintf(w, "snapshot %s %d instance(s)\n", what, len(c.Instances))
		for _, in := range c.Instances {
			fmt.Fprintf(w, "  %s/%s %s %s\n", in.Service, in.ID, in.Address, in.Health)
		}
	case registry.ChangeRegistered:
		fmt.Fprintf(w, "registered %s/%s %s %s\n", in.Service, in.ID, in.Address, in.Health)
	case registry.ChangeRemoved:
		fmt.Fprintf(w, "removed %s/%s %s\n", in.Service, in.ID, c.Reason)
	case registry.ChangeHealthChanged:
		fmt.Fprintf(w, "health-changed %s/%s %s %s\n", in.Service, in.ID, in.Health, orDash(c.Reason))
	}
}
