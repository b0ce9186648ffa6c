package main

import (
	"testing"

	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestAccountDecider(t *testing.T) {
	opened := AccountOpened{Owner: "Ann"}
	t.Run("an account opens once", func(t *testing.T) {
		sdktest.Given(t, AccountDecider).When(OpenAccount{Owner: "Ann"}).Then(opened)
		sdktest.Given(t, AccountDecider, opened).When(OpenAccount{Owner: "Ann"}).ThenError(ErrAlreadyOpen)
	})
	t.Run("deposits and withdrawals move the balance", func(t *testing.T) {
		sdktest.Given(t, AccountDecider, opened, MoneyDeposited{Amount: 100}).
			When(Withdraw{Amount: 30}).Then(MoneyWithdrawn{Amount: 30}).
			ThenState(Account{Open: true, Balance: 70})
	})
	t.Run("a withdrawal cannot overdraw", func(t *testing.T) {
		sdktest.Given(t, AccountDecider, opened, MoneyDeposited{Amount: 10}).
			When(Withdraw{Amount: 11}).ThenError(ErrInsufficientFunds)
	})
	t.Run("money needs an open account", func(t *testing.T) {
		sdktest.Given(t, AccountDecider).When(Deposit{Amount: 1}).ThenError(ErrNotOpen)
	})
}

func TestTransferDecider(t *testing.T) {
	requested := TransferRequested{From: "ann", To: "bob", Amount: 30}
	t.Run("a transfer is requested once", func(t *testing.T) {
		sdktest.Given(t, TransferDecider).When(RequestTransfer{From: "ann", To: "bob", Amount: 30}).Then(requested)
		sdktest.Given(t, TransferDecider, requested).When(RequestTransfer{From: "ann", To: "bob", Amount: 30}).ThenError(ErrTransferExists)
	})
	t.Run("a finished transfer ignores a second outcome", func(t *testing.T) {
		sdktest.Given(t, TransferDecider, requested).When(CompleteTransfer{}).Then(TransferCompleted{})
		sdktest.Given(t, TransferDecider, requested, TransferCompleted{}).When(FailTransfer{Reason: "late"}).Then()
	})
}
