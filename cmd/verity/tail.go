package main

import (
	"context"
	"fmt"
	"io"

	"github.com/verity-dev/verity"
)

const tailAbout = `
Follow STREAM, or the whole log when STREAM is omitted or "$all", printing each event as it
is committed, in the format of 'verity read', until interrupted (Ctrl-C). By default only new
events are printed; --from start prints the history first, with no gap and no duplicate
between history and live events.

Only one process may hold a data directory open at a time, so tail --data works on a store
that is not open elsewhere, and while it runs no other process (another verity command
included) can open that directory. To follow a store that others write to, tail its server
('verity serve', 'verity dev') with --server.
` + storeAbout + `

Examples:
  verity tail --data ./verity-data --from start order-1
  verity tail --server http://127.0.0.1:2113 --category order
  verity tail --category order --type OrderPlaced --json
`

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("tail", "verity tail [flags] [STREAM]", tailAbout)
	stores := addStoreFlags(fs)
	var from fromFlag
	fs.Var(&from, "from", "where to start, inclusive: `start|end|N`, N being a revision (stream)\nor a position ($all); end prints only new events (default end)")
	asJSON := fs.Bool("json", false, "print each event as a JSON object on its own line")
	filters := addFilterFlags(fs)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stream, err := streamArg("tail", pos)
	if err != nil {
		return err
	}
	filter, err := filters.check("tail", stream, from)
	if err != nil {
		return err
	}
	opts := verity.SubscribeOptions{Stream: stream, Filter: filter, FromTime: filters.since.t}
	switch {
	case !opts.FromTime.IsZero():
	case !from.set || from.end:
		opts.FromEnd = true
	case !from.start:
		opts.From = from.n
	}

	st, err := stores.open(false, stderr)
	if err != nil {
		return err
	}
	defer func() { err = st.finish(err) }()
	return tail(ctx, st, opts, newEventPrinter(stdout, *asJSON), stderr)
}

// tail prints the events of a subscription until ctx ends, which is its normal end.
func tail(ctx context.Context, st verity.Store, opts verity.SubscribeOptions, p *eventPrinter, stderr io.Writer) error {
	sub, err := st.Subscribe(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer sub.Close()
	for {
		m, err := sub.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch m.Kind {
		case verity.MessageEvent:
			if err := p.print(m.Event); err != nil {
				return err
			}
		case verity.MessageCaughtUp:
			fmt.Fprintf(stderr, "verity: caught up at position %d; waiting for new events (Ctrl-C to stop)\n", m.Position)
		}
	}
}
