package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/verity-dev/verity/engine"
)

const verifyAbout = `
Check every record of the data directory DIR (or --data DIR): each entry's checksum and each
link of the hash chain that ties every event to all those before it. Prints the number of
events checked, the last position, the head of the chain and OK, or the first bad position
and what is wrong with it; the exit code is 1 when the check fails.

Record the head somewhere else: a later check that prints a different head for the same last
position means the log was rewritten.

Verify reads the files directly; run it on a data directory no process is writing to.

Examples:
  verity verify ./verity-data
  verity verify --data ./verity-data
`

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "verity verify [--data DIR | DIR]", verifyAbout)
	dataDir := dataFlag(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	dir := *dataDir
	switch {
	case len(pos) > 1:
		return usagef("verify", "too many arguments: want one data directory, got %q", pos)
	case len(pos) == 1 && isFlagSet(fs, "data") && pos[0] != dir:
		return usagef("verify", "two data directories given: --data %q and %q", dir, pos[0])
	case len(pos) == 1:
		dir = pos[0]
	}
	if err := checkDataDir(dir); err != nil {
		return err
	}

	res, err := engine.Verify(ctx, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "events checked: %d\n", res.Events)
	fmt.Fprintf(stdout, "last position:  %d\n", res.LastPosition)
	fmt.Fprintf(stdout, "head:           %s\n", res.Head)
	if res.OK {
		_, err := fmt.Fprintln(stdout, "OK")
		return err
	}
	fmt.Fprintf(stdout, "FAILED at position %d: %s\n", res.FirstBadPosition, res.Problem)
	return fmt.Errorf("verify: %s failed the check at position %d: %s", dir, res.FirstBadPosition, res.Problem)
}

// isFlagSet reports whether the flag name was given on the command line.
func isFlagSet(fs *flagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
