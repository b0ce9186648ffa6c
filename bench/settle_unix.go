//go:build unix

package bench

import (
	"os"
	"syscall"
)

// removeStore deletes a store's directory and has the file system finish with it (journal
// commit, discards) before the next measurement, so that one store's cleanup does not
// stall the next one's fsyncs.
func removeStore(dir string) {
	os.RemoveAll(dir)
	syscall.Sync()
}
