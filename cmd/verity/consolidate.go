package main

import (
	"context"
	"errors"
	"io"
)

// runConsolidate is `verity consolidate` (issue 5, in progress).
func runConsolidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("verity consolidate: not built yet")
}
