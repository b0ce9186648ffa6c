package projection_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. Started as the crash test's
// child (see crash_test.go), it runs the child's workload instead and never returns: the
// parent kills it.
func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		runCrashChild()
		os.Exit(3) // runCrashChild only returns on a bug in the child
	}
	goleak.VerifyTestMain(m)
}
