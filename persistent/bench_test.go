package persistent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verity-dev/verity"
)

// BenchmarkAckRoundTrip measures one event's trip: delivered to the only consumer (at most
// one in flight), acked, and the next one delivered.
func BenchmarkAckRoundTrip(b *testing.B) {
	in := openInstance(b, b.TempDir())
	defer in.close()
	mustCreate(b, in.gs, verity.GroupSpec{Stream: "bench-1", Group: "g"})
	fill(b, in.st, "bench-1", b.N)
	c := mustJoin(b, in.gs, "bench-1", "g", 1)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		m, err := c.Recv(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Ack(ctx, m.Event.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFourConsumers measures events/s through four consumers of a round-robin group.
func BenchmarkFourConsumers(b *testing.B) {
	in := openInstance(b, b.TempDir())
	defer in.close()
	mustCreate(b, in.gs, verity.GroupSpec{Stream: "bench-1", Group: "g"})
	fill(b, in.st, "bench-1", b.N)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var acked atomic.Int64
	b.ResetTimer()
	for range 4 {
		c := mustJoin(b, in.gs, "bench-1", "g", 50)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := c.Recv(ctx)
				if err != nil {
					return
				}
				if c.Ack(ctx, m.Event.ID) != nil {
					return
				}
				if acked.Add(1) == int64(b.N) {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
}

func fill(b *testing.B, st verity.Store, stream string, n int) {
	b.Helper()
	for n > 0 {
		k := min(n, 1000)
		evs := make([]verity.EventData, k)
		for i := range evs {
			evs[i] = verity.EventData{Type: "Happened", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		}
		if _, err := st.Append(context.Background(), stream, verity.Any(), evs...); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}
