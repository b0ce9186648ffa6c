package httpapi

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every event stream's receiving
// goroutine must end with its request.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
