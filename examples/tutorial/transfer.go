package main

import (
	"context"
	"errors"

	"github.com/verity-dev/verity/sdk"
)

// Step 4: a transfer between two accounts is a workflow over three streams. Its own
// stream records the request and the outcome; a process manager moves the money.

type TransferEvent interface{ transferEvent() }

type TransferRequested struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
}

type TransferCompleted struct{}

type TransferFailed struct {
	Reason string `json:"reason"`
}

func (TransferRequested) transferEvent() {}
func (TransferCompleted) transferEvent() {}
func (TransferFailed) transferEvent()    {}

type RequestTransfer struct {
	From, To string
	Amount   int
}
type CompleteTransfer struct{}
type FailTransfer struct{ Reason string }

type Transfer struct {
	Requested, Finished bool
}

var ErrTransferExists = errors.New("transfer was requested already")

var TransferDecider = sdk.Decider[Transfer, any, TransferEvent]{
	Decide: func(s Transfer, cmd any) ([]TransferEvent, error) {
		switch c := cmd.(type) {
		case RequestTransfer:
			if s.Requested {
				return nil, ErrTransferExists
			}
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			return []TransferEvent{TransferRequested{From: c.From, To: c.To, Amount: c.Amount}}, nil
		case CompleteTransfer:
			if s.Finished {
				return nil, nil
			}
			return []TransferEvent{TransferCompleted{}}, nil
		case FailTransfer:
			if s.Finished {
				return nil, nil
			}
			return []TransferEvent{TransferFailed{Reason: c.Reason}}, nil
		}
		return nil, errors.New("unknown transfer command")
	},
	Evolve: func(s Transfer, e TransferEvent) Transfer {
		switch e.(type) {
		case TransferRequested:
			s.Requested = true
		case TransferCompleted, TransferFailed:
			s.Finished = true
		}
		return s
	},
}

// TransferProcess is the process manager: it reacts to TransferRequested by withdrawing
// from one account, depositing to the other and recording the outcome; when the target
// account is not open, it deposits the money back to the source (a compensation). Each command gets
// sdk.ReactingTo(e, key): a command id derived from the event's id (a redelivered event
// changes nothing twice) and the event's correlation and causation ids on the events.
func TransferProcess(accounts *sdk.CommandHandler[Account, any, AccountEvent], transfers *sdk.CommandHandler[Transfer, any, TransferEvent]) sdk.HandlerFunc {
	return func(ctx context.Context, e sdk.Event) error {
		req, ok := e.Data.(TransferRequested)
		if !ok {
			return nil // the group's filter sends only requests; ignore anything else
		}
		stream := e.Recorded.Stream
		_, err := accounts.Handle(ctx, "account-"+req.From, Withdraw{Amount: req.Amount}, sdk.ReactingTo(e, "withdraw"))
		if errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrNotOpen) {
			_, err = transfers.Handle(ctx, stream, FailTransfer{Reason: err.Error()}, sdk.ReactingTo(e, "fail"))
			return err
		}
		if err != nil {
			return err // retried by the group
		}
		_, err = accounts.Handle(ctx, "account-"+req.To, Deposit{Amount: req.Amount}, sdk.ReactingTo(e, "deposit"))
		if errors.Is(err, ErrNotOpen) {
			// The money left the source: give it back before recording the failure.
			if _, err := accounts.Handle(ctx, "account-"+req.From, Deposit{Amount: req.Amount}, sdk.ReactingTo(e, "refund")); err != nil {
				return err
			}
			_, err = transfers.Handle(ctx, stream, FailTransfer{Reason: err.Error()}, sdk.ReactingTo(e, "fail"))
			return err
		}
		if err != nil {
			return err
		}
		_, err = transfers.Handle(ctx, stream, CompleteTransfer{}, sdk.ReactingTo(e, "complete"))
		return err
	}
}
