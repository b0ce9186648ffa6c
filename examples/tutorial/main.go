// Command tutorial is the bank of docs/tutorial.md: accounts and transfers as
// event-sourced entities, a process manager that moves the money, and a SQL view of it
// all, on an embedded store in a temporary directory. Run it from the repository root:
//
//	go run ./examples/tutorial
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/sdk"
	"github.com/verity-dev/verity/sdk/projection"
	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

func main() {
	dir, err := os.MkdirTemp("", "verity-tutorial-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = run(context.Background(), dir, os.Stdout)
	os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tutorial:", err)
		os.Exit(1)
	}
}

// NewRegistry registers every event type of the service under its stable name.
func NewRegistry() *sdk.Registry {
	reg := sdk.NewRegistry(sdk.RegistryOptions{})
	sdk.MustRegister[AccountOpened](reg, "AccountOpened")
	sdk.MustRegister[MoneyDeposited](reg, "MoneyDeposited")
	sdk.MustRegister[MoneyWithdrawn](reg, "MoneyWithdrawn")
	sdk.MustRegister[TransferRequested](reg, "TransferRequested")
	sdk.MustRegister[TransferCompleted](reg, "TransferCompleted")
	sdk.MustRegister[TransferFailed](reg, "TransferFailed")
	return reg
}

// run is the whole tutorial on a store in dir; it writes the view to out.
func run(ctx context.Context, dir string, out io.Writer) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Step 3: a store, and command handlers running the deciders against it.
	store, err := engine.Open(engine.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		return err
	}
	defer closeInto(&err, store)
	reg := NewRegistry()
	accounts, err := sdk.NewCommandHandler(store, reg, AccountDecider, sdk.CommandHandlerConfig{})
	if err != nil {
		return err
	}
	transfers, err := sdk.NewCommandHandler(store, reg, TransferDecider, sdk.CommandHandlerConfig{})
	if err != nil {
		return err
	}

	// Step 4: the process manager, on a consumer group of the transfer requests.
	groups, err := persistent.New(store, persistent.Config{})
	if err != nil {
		return err
	}
	defer closeInto(&err, groups)
	err = groups.CreateGroup(ctx, verity.GroupSpec{
		Group:  "transfer-process",
		Filter: verity.Filter{Categories: []string{"transfer"}, EventTypes: []string{"TransferRequested"}},
	})
	if err != nil && !errors.Is(err, verity.ErrConflict) { // Conflict: created by an earlier run
		return err
	}
	process, err := sdk.StartGroupRunner(ctx, groups, reg, sdk.GroupRunnerConfig{Group: "transfer-process", Consumers: 2},
		TransferProcess(accounts, transfers))
	if err != nil {
		return err
	}
	defer closeInto(&err, process)

	// Step 5: the SQL view, in SQLite, kept up to date by a projector.
	db, err := sqlite.Open(filepath.Join(dir, "views.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer closeInto(&err, db)
	projector, err := projection.New(store, db, BankView(reg), projection.Config{Filter: ViewFilter})
	if err != nil {
		return err
	}
	projected := make(chan error, 1)
	go func() { projected <- projector.Run(ctx) }()
	defer func() {
		cancel()
		if perr := <-projected; err == nil && !errors.Is(perr, context.Canceled) {
			err = perr
		}
	}()

	// Step 6: commands. Ann opens an account and deposits 100; Bob opens one; Ann sends Bob
	// 30, and Bob tries to send Ann 500 he does not have.
	for _, c := range []struct {
		stream string
		cmd    any
	}{
		{"account-ann", OpenAccount{Owner: "Ann"}},
		{"account-ann", Deposit{Amount: 100}},
		{"account-bob", OpenAccount{Owner: "Bob"}},
	} {
		if _, err := accounts.Handle(ctx, c.stream, c.cmd); err != nil {
			return fmt.Errorf("%s: %w", c.stream, err)
		}
	}
	if _, err := accounts.Handle(ctx, "account-bob", Withdraw{Amount: 1}); !errors.Is(err, ErrInsufficientFunds) {
		return fmt.Errorf("bob withdrew from an empty account: %v", err)
	}
	for _, t := range []struct {
		stream string
		cmd    RequestTransfer
	}{
		{"transfer-1", RequestTransfer{From: "ann", To: "bob", Amount: 30}},
		{"transfer-2", RequestTransfer{From: "bob", To: "ann", Amount: 500}},
	} {
		md := sdk.Metadata{CorrelationID: "tutorial-" + t.stream}
		if _, err := transfers.Handle(ctx, t.stream, t.cmd, sdk.WithMetadata(md)); err != nil {
			return fmt.Errorf("%s: %w", t.stream, err)
		}
	}

	// The process manager and the view work asynchronously: wait until the view shows
	// both transfers finished.
	if err := waitFor(ctx, 30*time.Second, func() (bool, error) {
		st, err := projector.Status(ctx)
		if err != nil || st.LastError != nil {
			return false, errors.Join(err, st.LastError)
		}
		n, err := pendingTransfers(ctx, db)
		return err == nil && n == 0 && st.CaughtUp, err
	}); err != nil {
		return err
	}
	return PrintView(ctx, db, out)
}

func waitFor(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the view did not show the transfers finished within %v", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func closeInto(err *error, c io.Closer) {
	if cerr := c.Close(); *err == nil {
		*err = cerr
	}
}
