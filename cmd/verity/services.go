package main

import (
	"context"
	"errors"
	"io"
)

// runServices is `verity services` (issue 5, in progress).
func runServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("verity services: not built yet")
}
