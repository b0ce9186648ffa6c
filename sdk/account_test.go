package sdk_test

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/sdk"
)

// A small bank account: the sample decider of the tests.

type Account struct {
	Open    bool
	Owner   string
	Balance int
}

type AccountEvent interface{ accountEvent() }

type Opened struct {
	Owner string `json:"owner"`
}
type Deposited struct {
	Amount int `json:"amount"`
}
type Withdrawn struct {
	Amount int `json:"amount"`
}

func (Opened) accountEvent()    {}
func (Deposited) accountEvent() {}
func (Withdrawn) accountEvent() {}

type (
	Open     struct{ Owner string }
	Deposit  struct{ Amount int }
	Withdraw struct{ Amount int }
)

var (
	ErrAlreadyOpen       = errors.New("account is open already")
	ErrNotOpen           = errors.New("account is not open")
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrBadAmount         = errors.New("amount must be positive")
)

var accountDecider = sdk.Decider[Account, any, AccountEvent]{
	Decide: func(s Account, cmd any) ([]AccountEvent, error) {
		switch c := cmd.(type) {
		case Open:
			if s.Open {
				return nil, ErrAlreadyOpen
			}
			return []AccountEvent{Opened{Owner: c.Owner}}, nil
		case Deposit:
			if !s.Open {
				return nil, ErrNotOpen
			}
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			return []AccountEvent{Deposited{Amount: c.Amount}}, nil
		case Withdraw:
			if !s.Open {
				return nil, ErrNotOpen
			}
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			if c.Amount > s.Balance {
				return nil, ErrInsufficientFunds
			}
			return []AccountEvent{Withdrawn{Amount: c.Amount}}, nil
		}
		return nil, errors.New("unknown command")
	},
	Evolve: func(s Account, e AccountEvent) Account {
		switch e := e.(type) {
		case Opened:
			s.Open, s.Owner = true, e.Owner
		case Deposited:
			s.Balance += e.Amount
		case Withdrawn:
			s.Balance -= e.Amount
		}
		return s
	},
}

func newRegistry(t testing.TB, opts sdk.RegistryOptions) *sdk.Registry {
	t.Helper()
	reg := sdk.NewRegistry(opts)
	for _, err := range []error{
		sdk.Register[Opened](reg, "AccountOpened"),
		sdk.Register[Deposited](reg, "MoneyDeposited"),
		sdk.Register[Withdrawn](reg, "MoneyWithdrawn"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func openEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newAccounts(t testing.TB, store verity.Store, reg *sdk.Registry, cfg sdk.CommandHandlerConfig) *sdk.CommandHandler[Account, any, AccountEvent] {
	t.Helper()
	h, err := sdk.NewCommandHandler(store, reg, accountDecider, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustHandle(t testing.TB, h *sdk.CommandHandler[Account, any, AccountEvent], stream string, cmd any, opts ...sdk.CommandOption) sdk.Result[Account, AccountEvent] {
	t.Helper()
	res, err := h.Handle(context.Background(), stream, cmd, opts...)
	if err != nil {
		t.Fatalf("handle %#v on %s: %v", cmd, stream, err)
	}
	return res
}

func readAll(t testing.TB, store verity.Store, stream string) []verity.RecordedEvent {
	t.Helper()
	recs, err := store.ReadStream(context.Background(), stream, verity.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return recs
}
