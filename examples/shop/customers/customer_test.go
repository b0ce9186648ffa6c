package customers

import (
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk/sdktest"
)

func TestCustomerDecider(t *testing.T) {
	const id = "0e0c6a4e-29c5-4b7e-9b0c-1f6f2f9f4a11"
	registered := events.CustomerRegistered{CustomerID: id, Name: "Ann", Email: "ann@example.com"}
	t.Run("a customer registers once", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Register{CustomerID: id, Name: " Ann ", Email: "ann@example.com"}).Then(registered).
			ThenState(Customer{CustomerID: id, Name: "Ann", Email: "ann@example.com"})
		sdktest.Given(t, Decider, registered).When(Register{CustomerID: id, Name: "Ann", Email: "ann@example.com"}).ThenError(ErrExists)
	})
	t.Run("a registration needs a name and an email address", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Register{CustomerID: id, Name: "", Email: "ann@example.com"}).ThenError(verity.ErrInvalid)
		sdktest.Given(t, Decider).When(Register{CustomerID: id, Name: "Ann", Email: "not an address"}).ThenError(verity.ErrInvalid)
		sdktest.Given(t, Decider).When(Register{CustomerID: id, Name: "Ann", Email: "Ann <ann@example.com>"}).ThenError(verity.ErrInvalid)
	})
	t.Run("an update changes name and email", func(t *testing.T) {
		sdktest.Given(t, Decider, registered).When(Update{Name: "Ann B", Email: "annb@example.com"}).
			Then(events.CustomerUpdated{CustomerID: id, Name: "Ann B", Email: "annb@example.com"}).
			ThenState(Customer{CustomerID: id, Name: "Ann B", Email: "annb@example.com"})
	})
	t.Run("an update that changes nothing records nothing", func(t *testing.T) {
		sdktest.Given(t, Decider, registered).When(Update{Name: "Ann", Email: "ann@example.com"}).Then()
	})
	t.Run("an unknown customer cannot be updated", func(t *testing.T) {
		sdktest.Given(t, Decider).When(Update{Name: "Ann", Email: "ann@example.com"}).ThenError(ErrNotFound)
	})
}
