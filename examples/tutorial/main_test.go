package main

import (
	"bytes"
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the tutorial end to end and checks the view it prints.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), t.TempDir(), &out); err != nil {
		t.Fatal(err)
	}
	want := `accounts
  ann    Ann        70
  bob    Bob        30
transfers
  1   ann -> bob        30  completed
  2   bob -> ann       500  failed: insufficient funds
`
	if out.String() != want {
		t.Fatalf("the tutorial printed\n%s\nwant\n%s", out.String(), want)
	}
}
