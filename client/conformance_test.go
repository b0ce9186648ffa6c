package client_test

import (
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"github.com/verity-dev/verity/storetest"
)

// TestConformance runs the Store conformance suite against the client, talking over
// 127.0.0.1 to a grpcapi.Service in front of an engine.
func TestConformance(t *testing.T) {
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	storetest.Run(t, storetest.Harness{
		New: func(t testing.TB) verity.Store {
			return serve(t, t.TempDir(), clock.Now, grpcapi.Options{}, client.Options{})
		},
		Reopen: func(t testing.TB, s verity.Store) verity.Store {
			old := s.(*served)
			_ = old.Close()
			return serve(t, old.dir, clock.Now, grpcapi.Options{}, client.Options{})
		},
		Clock:    clock,
		Features: storetest.Features{Reopen: true, ControlClock: true},
	})
}
