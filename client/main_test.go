package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the client's subscription
// goroutines, the test servers and their engines must all be stopped by Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
