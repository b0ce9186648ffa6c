package registry

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// Registrar is the part of a registry a service instance talks to: the embedded Registry
// or a network client of one. Its methods may be called concurrently; their contracts are
// those of Registry's methods of the same names.
type Registrar interface {
	Register(ctx context.Context, in Instance) (Lease, error)
	Heartbeat(ctx context.Context, id string) error
	Deregister(ctx context.Context, id string) error
}

// deregisterTimeout bounds the Deregister that KeepRegistered sends when it stops.
const deregisterTimeout = 5 * time.Second

// KeepRegistered registers in with r and keeps it registered until ctx ends: it sends a
// heartbeat every `every` (zero means a third of the lease's TTL), registers again with
// the same ID whenever the registry answers NotFound (the lease was lost, or a restarted
// registry no longer knows the instance), and keeps trying through other failures (the
// registry is down or restarting). When ctx ends it deregisters the instance and returns
// nil, or that Deregister's error. It returns at once on an Invalid or Conflict
// registration, which retrying would not cure. An empty in.ID is generated before the
// first registration and kept.
func KeepRegistered(ctx context.Context, r Registrar, in Instance, every time.Duration) error {
	if every < 0 {
		return verity.Errorf(verity.Invalid, "keep registered", "heartbeat interval %v is negative", every)
	}
	if in.ID == "" {
		// Chosen here rather than by the registry: over a network a registration can
		// succeed while its answer is lost, and registering again under the same id
		// replaces it rather than leaving a second instance behind.
		in.ID = uuid.NewString()
	}
	// registered: the last registration or heartbeat succeeded. unsure: a registration
	// was cut short by ctx, so the registry may hold the instance all the same.
	registered, unsure := false, false
	wait := every
	if wait == 0 {
		wait = time.Second // until a lease tells the TTL
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if !registered && !unsure {
				return nil
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
			defer cancel()
			if err := r.Deregister(dctx, in.ID); err != nil && verity.KindOf(err) != verity.NotFound {
				return err
			}
			return nil
		case <-timer.C:
		}
		var err error
		if registered {
			err = r.Heartbeat(ctx, in.ID)
			if verity.KindOf(err) == verity.NotFound {
				registered = false
			}
		}
		if !registered {
			var lease Lease
			lease, err = r.Register(ctx, in)
			switch {
			case err == nil:
				registered, in.ID = true, lease.InstanceID
			case ctx.Err() != nil:
				unsure = true
				if every == 0 && lease.TTL > 0 {
					wait = max(lease.TTL/3, time.Millisecond)
				}
			case ctx.Err() == nil && (verity.KindOf(err) == verity.Invalid || verity.KindOf(err) == verity.Conflict):
				return err
			}
		}
		timer.Reset(wait)
	}
}
