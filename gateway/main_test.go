package gateway_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the resolvers' watches, the
// transports' connections and the registry must all stop when their owners close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
