package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"github.com/verity-dev/verity/server"
)

// The network append path with client and server in this process, so that one
// -cpuprofile sees both sides (`verity bench` itself always runs the server as a process
// of its own):
//
//	go test -run '^$' -bench 'AppendInProcess/serve/W=64/B=1' -cpuprofile cpu.out ./bench/
//
// "serve" is the server exactly as `verity serve --insecure` builds it: gRPC handed to
// grpc-go's ServeHTTP by net/http's HTTP/2 server, sharing the port with HTTP/JSON.
// "grpc-native" serves the same gRPC service (grpcapi over package auth over the engine)
// with grpc-go's own HTTP/2 transport on a port of its own, to tell the cost of the
// transport from the cost of the service. "embedded" is the engine without a network, the
// figure both are held against.
func BenchmarkAppendInProcess(b *testing.B) {
	variants := []struct {
		name string
		open func(b *testing.B, cs *commitStats) system
	}{
		{"embedded", func(b *testing.B, cs *commitStats) system {
			e, err := engine.Open(engine.Config{Dir: b.TempDir(), Logger: quiet, OnCommit: cs.record})
			if err != nil {
				b.Fatal(err)
			}
			return &verityStore{s: e}
		}},
		{"serve", func(b *testing.B, cs *commitStats) system { return openInProcessServe(b, cs, 1) }},
		{"grpc-native", func(b *testing.B, cs *commitStats) system { return openInProcessNative(b, cs, 1) }},
		// The client's appends as unary calls, as before append sessions: the figure the
		// sessions of "grpc-native" (the client's default) are held against.
		{"grpc-native-unary", func(b *testing.B, cs *commitStats) system {
			return openInProcessNativeWith(b, cs, 1, client.Options{MaxAppendSessions: -1})
		}},
		{"serve-unary", func(b *testing.B, cs *commitStats) system {
			return openInProcessServeWith(b, cs, 1, client.Options{MaxAppendSessions: -1})
		}},
		// grpc-go's stream workers reuse goroutines whose stacks have grown, instead of a
		// fresh goroutine per call growing its stack through the handler.
		{"grpc-native-workers", func(b *testing.B, cs *commitStats) system {
			return openInProcessNative(b, cs, 1, grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))))
		}},
		// Four clients, so four connections, the writers' streams shared out among them:
		// tells how much of the cost is one connection's serial path (its reader and
		// writer goroutines, and net/http's per-connection serve loop).
		// Appends over reused bidirectional streams (stream_test.go), not unary calls.
		{"grpc-stream", openStreamPrototype},
		{"serve-4conns", func(b *testing.B, cs *commitStats) system { return openInProcessServe(b, cs, 4) }},
		{"grpc-native-4conns", func(b *testing.B, cs *commitStats) system { return openInProcessNative(b, cs, 4) }},
	}
	for _, v := range variants {
		for _, w := range []int{1, 64} {
			for _, batch := range []int{1, 10} {
				b.Run(fmt.Sprintf("%s/W=%d/B=%d", v.name, w, batch), func(b *testing.B) {
					var cs commitStats
					s := v.open(b, &cs)
					defer s.Close()
					cs.reset()
					appendOps(b, s, w, batch)
					cs.report(b)
				})
			}
		}
	}
}

// commitStats counts the engine's group commits, to tell a slow commit from a small one.
type commitStats struct {
	commits, events, fsyncNS atomic.Int64
}

func (c *commitStats) record(ci engine.CommitInfo) {
	c.commits.Add(1)
	c.events.Add(int64(ci.Events))
	c.fsyncNS.Add(int64(ci.Fsync))
}

func (c *commitStats) reset() {
	c.commits.Store(0)
	c.events.Store(0)
	c.fsyncNS.Store(0)
}

// report adds events per commit and the mean fsync time to the benchmark's line.
func (c *commitStats) report(b *testing.B) {
	n := c.commits.Load()
	if n == 0 {
		return
	}
	b.ReportMetric(float64(c.events.Load())/float64(n), "events/commit")
	b.ReportMetric(float64(c.fsyncNS.Load())/float64(n)/1e3, "fsync-µs")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "commits/s")
}

// appendOps runs b.N appends of batch events from w writers and reports events/s.
func appendOps(b *testing.B, s system, w, batch int) {
	var ops atomic.Int64
	total := int64(b.N)
	b.SetBytes(int64(batch * PayloadSize))
	b.ResetTimer()
	err := runWorkers(b.Context(), w, func(ctx context.Context, i int) error {
		var (
			tokens = map[string]uint64{}
			n      uint64
			k      int
		)
		for ops.Add(1) <= total {
			stream := streamName("bench-", i+w*(k%64))
			k++
			events := make([][]byte, batch)
			for j := range events {
				events[j] = makePayload(n)
				n++
			}
			next, err := s.Append(ctx, stream, tokens[stream], events)
			if err != nil {
				return err
			}
			tokens[stream] = next
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// inProcess is clients of a server in this process, each stream always sent through the
// same client; Close stops them all.
type inProcess struct {
	*verityStore // the first client: reads and subscriptions
	clients      []*verityStore
	stop         func() error
}

func newInProcess(b *testing.B, addr string, conns int, copts client.Options, stop func() error) *inProcess {
	p := &inProcess{stop: stop}
	for range conns {
		c, err := client.Dial(addr, copts)
		if err != nil {
			p.Close()
			b.Fatal(err)
		}
		p.clients = append(p.clients, &verityStore{s: c})
	}
	p.verityStore = p.clients[0]
	return p
}

func (p *inProcess) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	h := fnv.New32a()
	h.Write([]byte(stream))
	return p.clients[h.Sum32()%uint32(len(p.clients))].Append(ctx, stream, expected, events)
}

func (p *inProcess) Close() error {
	var errs []error
	for _, c := range p.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(append(errs, p.stop())...)
}

var quiet = slog.New(slog.DiscardHandler)

func openInProcessServe(b *testing.B, cs *commitStats, conns int) system {
	return openInProcessServeWith(b, cs, conns, client.Options{})
}

func openInProcessServeWith(b *testing.B, _ *commitStats, conns int, copts client.Options) system {
	// The server's engine is its own: no commit statistics.
	srv, err := server.New(server.Config{Data: b.TempDir(), Listen: "127.0.0.1:0", Insecure: true}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		b.Fatal(err)
	}
	return newInProcess(b, srv.Addr().String(), conns, copts, func() error { return srv.Shutdown(context.Background()) })
}

func openInProcessNative(b *testing.B, cs *commitStats, conns int, opts ...grpc.ServerOption) system {
	return openInProcessNativeWith(b, cs, conns, client.Options{}, opts...)
}

func openInProcessNativeWith(b *testing.B, cs *commitStats, conns int, copts client.Options, opts ...grpc.ServerOption) system {
	e, err := engine.Open(engine.Config{Dir: b.TempDir(), Logger: quiet, OnCommit: cs.record})
	if err != nil {
		b.Fatal(err)
	}
	a, err := auth.Open(b.Context(), e, auth.Config{Insecure: true, Logger: quiet})
	if err != nil {
		e.Close()
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close()
		e.Close()
		b.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	grpcapi.New(storeOnly{a}, grpcapi.Options{Logger: quiet}).Register(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	return newInProcess(b, lis.Addr().String(), conns, copts, func() error {
		gs.Stop()
		return errors.Join(<-served, a.Close(), e.Close())
	})
}

var _ verity.Store = (*client.Client)(nil)

// storeOnly serves the store of an auth.Service and no consumer groups: the append
// benchmarks need nothing more.
type storeOnly struct{ *auth.Service }

func (storeOnly) Groups(auth.Principal) verity.Groups { return nil }
