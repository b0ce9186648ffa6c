package sdk_test

import (
	"testing"

	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestAccountDecider(t *testing.T) {
	t.Run("an account opens once", func(t *testing.T) {
		sdktest.Given(t, accountDecider).When(Open{Owner: "ann"}).Then(Opened{Owner: "ann"}).
			ThenState(Account{Open: true, Owner: "ann"})
		sdktest.Given(t, accountDecider, Opened{Owner: "ann"}).When(Open{Owner: "bob"}).ThenError(ErrAlreadyOpen)
	})
	t.Run("a deposit adds to the balance", func(t *testing.T) {
		sdktest.Given(t, accountDecider, Opened{Owner: "ann"}, Deposited{Amount: 5}).
			When(Deposit{Amount: 10}).Then(Deposited{Amount: 10}).
			ThenState(Account{Open: true, Owner: "ann", Balance: 15})
	})
	t.Run("a closed account takes no deposit", func(t *testing.T) {
		sdktest.Given(t, accountDecider).When(Deposit{Amount: 10}).ThenError(ErrNotOpen)
	})
	t.Run("a withdrawal cannot overdraw", func(t *testing.T) {
		sdktest.Given(t, accountDecider, Opened{Owner: "ann"}, Deposited{Amount: 5}).
			When(Withdraw{Amount: 6}).ThenError(ErrInsufficientFunds)
		sdktest.Given(t, accountDecider, Opened{Owner: "ann"}, Deposited{Amount: 5}).
			When(Withdraw{Amount: 5}).Then(Withdrawn{Amount: 5}).ThenState(Account{Open: true, Owner: "ann"})
	})
	t.Run("amounts must be positive", func(t *testing.T) {
		sdktest.Given(t, accountDecider, Opened{Owner: "ann"}).When(Deposit{Amount: 0}).ThenError(ErrBadAmount)
	})
}
