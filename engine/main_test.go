package engine

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (every goroutine the engine starts
// must be stopped by Close). When started as the crash test's child process (see
// crash_test.go) it runs the child's workload instead of the tests and never returns: the
// parent kills it.
func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		runCrashChild()
		os.Exit(3) // runCrashChild only returns on a bug in the child
	}
	goleak.VerifyTestMain(m)
}
