//go:build !unix

package bench

import "os"

// removeStore deletes a store's directory.
func removeStore(dir string) { os.RemoveAll(dir) }
