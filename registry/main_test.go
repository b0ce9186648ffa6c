package registry_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the sweeper, the resolver's
// watches and KeepRegistered must all stop when their owner closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
