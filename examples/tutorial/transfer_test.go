package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/sdk"
)

// A transfer to an account that is not open gives the money back and fails, and a
// redelivery of its request changes nothing more.
func TestTransferToAnAccountNotOpenRefundsTheSource(t *testing.T) {
	ctx := context.Background()
	store, err := engine.Open(engine.Config{Dir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := NewRegistry()
	accounts, err := sdk.NewCommandHandler(store, reg, AccountDecider, sdk.CommandHandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	transfers, err := sdk.NewCommandHandler(store, reg, TransferDecider, sdk.CommandHandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []any{OpenAccount{Owner: "Ann"}, Deposit{Amount: 100}} {
		if _, err := accounts.Handle(ctx, "account-ann", cmd); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := transfers.Handle(ctx, "transfer-9", RequestTransfer{From: "ann", To: "nobody", Amount: 30}); err != nil {
		t.Fatal(err)
	}
	recs, err := store.ReadStream(ctx, "transfer-9", verity.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	requested, err := reg.Decode(recs[0])
	if err != nil {
		t.Fatal(err)
	}

	process := TransferProcess(accounts, transfers)
	for delivery := range 2 {
		if err := process(ctx, requested); err != nil {
			t.Fatalf("delivery %d: %v", delivery, err)
		}
		ann, _, err := accounts.State(ctx, "account-ann")
		if err != nil {
			t.Fatal(err)
		}
		if ann.Balance != 100 {
			t.Errorf("delivery %d: Ann's balance is %d, want 100 (refunded)", delivery, ann.Balance)
		}
		tr, _, err := transfers.State(ctx, "transfer-9")
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Finished {
			t.Errorf("delivery %d: the transfer is not finished", delivery)
		}
	}
}
