package persistent

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: Manager.Close stops every group
// and its reader.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
