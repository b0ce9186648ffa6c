package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: Service.Close must stop the
// goroutine that follows the users stream.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
