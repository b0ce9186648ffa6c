package kurrentdb

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every subscription and read the
// service starts must end with its request.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
