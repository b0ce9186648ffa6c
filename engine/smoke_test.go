package engine

import (
	"context"
	"testing"

	"github.com/verity-dev/verity"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := e.Append(ctx, "order-1", verity.NoStream(), verity.EventData{Type: "OrderPlaced", Data: []byte(`{"a":1}`)}, verity.EventData{Type: "OrderPaid", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v", r)
	evs, err := e.ReadStream(ctx, "order-1", verity.ReadStreamOptions{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("read %v %v", evs, err)
	}
	all, err := e.ReadAll(ctx, verity.ReadAllOptions{Filter: verity.Filter{Categories: []string{"order"}}})
	if err != nil || len(all) != 2 {
		t.Fatalf("read all %v %v", all, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	evs, err = e.ReadStream(ctx, "order-1", verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true})
	if err != nil || len(evs) != 2 || evs[0].Revision != 1 {
		t.Fatalf("read after reopen %v %v", evs, err)
	}
	res, err := Verify(ctx, dir)
	t.Logf("verify %+v %v", res, err)
}
