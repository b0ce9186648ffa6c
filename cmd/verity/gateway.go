package main

import (
	"context"
	"errors"
	"io"
)

// runGateway is `verity gateway` (issue 5, in progress).
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("verity gateway: not built yet")
}
