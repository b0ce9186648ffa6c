package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// system is what the workloads need of a store under test. Every method may be called
// concurrently by any number of goroutines, except Close.
type system interface {
	// Append adds events (encoded payloads) to the end of stream, all or nothing, and
	// returns once they are durable. expected is the token the previous Append to this
	// stream returned, or 0 when the stream is new; the append must fail when the stream
	// moved on since (the optimistic-concurrency check every store does). The returned token
	// is for the next Append to the same stream.
	Append(ctx context.Context, stream string, expected uint64, events [][]byte) (next uint64, err error)

	// AppendMulti appends to several distinct streams atomically, each part with its
	// expected token as for Append, and returns each part's next token. Building the
	// stores that replay, read-stream and scale read uses it, so that a build writes large
	// commits whatever the store's cost per commit.
	AppendMulti(ctx context.Context, parts []streamAppend) (next []uint64, err error)

	// Replay reads the whole log from its start in order, decoding every event, and calls
	// page after every page of at most pageSize events with the page's events. It returns
	// the number of events read.
	Replay(ctx context.Context, pageSize int, page func(events int)) (int, error)

	// ReadStream reads the first limit events of stream and returns how many it read.
	ReadStream(ctx context.Context, stream string, limit int) (int, error)

	// Subscribe delivers, to fn on one goroutine, the payload of every event appended
	// after Subscribe returned, in log order, until the returned Closer's Close, which waits
	// for that goroutine.
	Subscribe(ctx context.Context, fn func(data []byte)) (io.Closer, error)

	// Close releases the store and waits for everything it started.
	Close() error
}

// streamAppend is one stream's part of an AppendMulti.
type streamAppend struct {
	stream   string
	expected uint64
	events   [][]byte
}

// Names of the systems, as reported in the "system" field.
const (
	systemVerity = "verity"
	systemServer = "verity-server"
	systemOwnlog = "ownlog"
	systemNATS   = "nats"
)

// openSystem opens (creating it if need be) the store of a system in dir. opts must have
// its defaults set.
func openSystem(ctx context.Context, name, dir string, opts Options) (system, error) {
	switch name {
	case systemVerity:
		return openVerity(dir)
	case systemServer:
		return openServer(ctx, opts.ServerCommand, dir)
	case systemOwnlog:
		return openOwnlog(dir)
	case systemNATS:
		return openNATS(ctx, dir)
	}
	return nil, fmt.Errorf("unknown system %q", name)
}

// PayloadSize is the size of every event's data: a JSON object.
const PayloadSize = 200

// The payload is {"n":"<16 digits>","type":"bench","pad":"xxx..."}: the event's number at a
// fixed offset, so a subscriber reads it back without decoding JSON.
const (
	payloadHead   = `{"n":"`
	payloadDigits = 16
	payloadMid    = `","type":"bench","pad":"`
	payloadTail   = `"}`
)

// makePayload returns a 200-byte JSON event carrying n.
func makePayload(n uint64) []byte {
	b := make([]byte, 0, PayloadSize)
	b = append(b, payloadHead...)
	d := strconv.AppendUint(nil, n, 10)
	for i := len(d); i < payloadDigits; i++ {
		b = append(b, '0')
	}
	b = append(b, d...)
	b = append(b, payloadMid...)
	for len(b) < PayloadSize-len(payloadTail) {
		b = append(b, 'x')
	}
	return append(b, payloadTail...)
}

// payloadNumber reads back the number makePayload put in data.
func payloadNumber(data []byte) (uint64, error) {
	if len(data) < len(payloadHead)+payloadDigits {
		return 0, fmt.Errorf("payload of %d bytes too short", len(data))
	}
	n, err := strconv.ParseUint(string(data[len(payloadHead):len(payloadHead)+payloadDigits]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("payload number: %w", err)
	}
	return n, nil
}
