package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity"
)

// TestErrorsNameTheOperationCalled: an error says which call failed, not which internal path
// served it.
func TestErrorsNameTheOperationCalled(t *testing.T) {
	e, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.Append(ctx, "order-1", verity.Any(), verity.EventData{Type: "A"}); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"append": func() error {
			_, err := e.Append(ctx, "order-1", verity.NoStream(), verity.EventData{Type: "A"})
			return err
		},
		"append multi": func() error {
			_, err := e.AppendMulti(ctx, verity.StreamAppend{Stream: "order-1", Expected: verity.NoStream(), Events: []verity.EventData{{Type: "A"}}})
			return err
		},
		"set metadata": func() error {
			_, err := e.SetStreamMetadata(ctx, "order-1", verity.Exact(7), verity.StreamMetadata{})
			return err
		},
	}
	for op, call := range calls {
		var ve *verity.Error
		if err := call(); !errors.As(err, &ve) || ve.Op != op || ve.Kind != verity.Conflict {
			t.Errorf("%s: got %v (op %q), want a conflict from op %q", op, err, opOf(ve), op)
		}
	}
}

func opOf(e *verity.Error) string {
	if e == nil {
		return ""
	}
	return e.Op
}
