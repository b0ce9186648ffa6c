package main

import (
	"errors"

	"github.com/verity-dev/verity/sdk"
)

// Step 1: the account's events. They are plain structs, registered under stable type names.

// AccountEvent is implemented by every event of an account.
type AccountEvent interface{ accountEvent() }

type AccountOpened struct {
	Owner string `json:"owner"`
}

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

type MoneyWithdrawn struct {
	Amount int `json:"amount"`
}

func (AccountOpened) accountEvent()  {}
func (MoneyDeposited) accountEvent() {}
func (MoneyWithdrawn) accountEvent() {}

// Step 2: the commands, and the decider that turns them into events.

type OpenAccount struct{ Owner string }
type Deposit struct{ Amount int }
type Withdraw struct{ Amount int }

var (
	ErrAlreadyOpen       = errors.New("account is open already")
	ErrNotOpen           = errors.New("account is not open")
	ErrBadAmount         = errors.New("amount must be positive")
	ErrInsufficientFunds = errors.New("insufficient funds")
)

// Account is the state the decider needs to decide: nothing more.
type Account struct {
	Open    bool
	Balance int
}

var AccountDecider = sdk.Decider[Account, any, AccountEvent]{
	Decide: func(s Account, cmd any) ([]AccountEvent, error) {
		switch c := cmd.(type) {
		case OpenAccount:
			if s.Open {
				return nil, ErrAlreadyOpen
			}
			return []AccountEvent{AccountOpened{Owner: c.Owner}}, nil
		case Deposit:
			if !s.Open {
				return nil, ErrNotOpen
			}
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			return []AccountEvent{MoneyDeposited{Amount: c.Amount}}, nil
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
			return []AccountEvent{MoneyWithdrawn{Amount: c.Amount}}, nil
		}
		return nil, errors.New("unknown account command")
	},
	Evolve: func(s Account, e AccountEvent) Account {
		switch e := e.(type) {
		case AccountOpened:
			s.Open = true
		case MoneyDeposited:
			s.Balance += e.Amount
		case MoneyWithdrawn:
			s.Balance -= e.Amount
		}
		return s
	},
}
