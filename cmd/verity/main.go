// Command verity is Verity's command line: it serves the store (serve, dev), appends to,
// reads and follows it locally or through a server, manages and consumes consumer groups,
// verifies and scavenges a data directory, and benchmarks the engine and the server.
//
// Each subcommand lives in its own file as a function runX(ctx, args, stdout, stderr); this
// file only dispatches to it and maps what it returns onto an exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong
)

// command is one subcommand of verity.
type command struct {
	name     string
	synopsis string // one line, shown by `verity help`
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the dispatch table, in the order `verity help` lists them.
var commands = []command{
	{"dev", "run the server for development: insecure, on loopback, data in ./verity-data", runDev},
	{"serve", "serve the store over gRPC (KurrentDB protocol) and HTTP/JSON", runServe},
	{"append", "append events to a stream", runAppend},
	{"read", "read a stream, or the whole log ($all), optionally filtered", runRead},
	{"tail", "follow a stream or the log, printing events as they are committed", runTail},
	{"groups", "manage consumer groups (persistent subscriptions) and consume from them", runGroups},
	{"services", "list and watch the service registry's instances", runServices},
	{"gateway", "run the API gateway: routes, composition and commands over registry services", runGateway},
	{"consolidate", "run SQL read models (projections) off the log, and show or rebuild them", runConsolidate},
	{"demo", "drive the shop reference system: demo load sends traffic through the gateway", runDemo},
	{"verify", "check a data directory's checksums and hash chain", runVerify},
	{"scavenge", "reclaim the space of deleted and expired events", runScavenge},
	{"bench", "measure append and read throughput of the engine or the server, against peers", runBench},
}

// defaultGCPercent is the collector's target when GOGC is not set. A log store allocates
// fast (every read returns fresh events) over a small live heap, and at Go's default of 100
// a replay spends most of its time collecting: 1.8M events/s at 100, 3.2M at 400, with the
// heap still bounded by its small live set (see docs/benchmarks.md). GOGC and GOMEMLIMIT,
// when set, win.
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks the command to stop cleanly; restoring the default
		// handling lets a second one kill a command that does not.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the subcommand named by args[0] and returns the process's exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printMainUsage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			// `verity help CMD` is `verity CMD --help`.
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		printMainUsage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			return exitCode(c.run(ctx, rest, stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "verity: unknown command %q\n\n", name)
	printMainUsage(stderr)
	return exitUsage
}

// exitCode reports err on stderr and maps it onto an exit code.
func exitCode(err error, stderr io.Writer) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "verity: %v\n", err)
		if usage.cmd != "" {
			fmt.Fprintf(stderr, "Run 'verity %s --help' for usage.\n", usage.cmd)
		}
		return exitUsage
	default:
		fmt.Fprintf(stderr, "verity: %v\n", err)
		return exitFailure
	}
}

func printMainUsage(w io.Writer) {
	fmt.Fprint(w, `Verity is an event store: an ordered, durable, tamper-evident log of events.

Usage:
  verity COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.synopsis)
	}
	fmt.Fprint(w, `
Commands that work on a local data directory take --data DIR (default ./verity-data).
Only one process may hold a data directory open at a time. append, read and tail also work
against a running server with --server URL (e.g. http://127.0.0.1:2113 from 'verity dev'),
and so does groups, which manages the server's consumer groups.

Run 'verity help COMMAND' or 'verity COMMAND --help' for a command's flags.
Exit codes: 0 success, 1 the command failed, 2 the command line was wrong.
`)
}
