package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const scavengeAbout = `
Reclaim the disk space of events that no read returns any more: those of deleted streams and
those hidden by a stream's max age, max count or truncate-before. Sealed segment files are
rewritten without them; positions, revisions and the hash chain that 'verify' checks are kept.

Examples:
  verity scavenge --data ./verity-data
`

func runScavenge(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("scavenge", "verity scavenge [--data DIR]", scavengeAbout)
	dataDir := dataFlag(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("scavenge", "unexpected argument %q (the data directory is given with --data)", pos[0])
	}
	st, err := openEngine(*dataDir, false, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()

	res, err := st.Scavenge(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "scavenged: %s rewritten, %s removed, %s reclaimed\n",
		plural(res.SegmentsRewritten, "segment"), plural(int(res.EventsRemoved), "event"), byteSize(res.BytesReclaimed))
	return err
}

// byteSize formats n bytes for people: 0 B, 512 B, 1.5 KiB, 3.2 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
