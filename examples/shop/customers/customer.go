package customers

import (
	"net/mail"
	"strings"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/examples/shop/events"
	"github.com/verity-dev/verity/sdk"
)

// Commands of a customer.
type (
	Register struct{ CustomerID, Name, Email string }
	Update   struct{ Name, Email string }
)

// Errors of the decider; their kinds give the HTTP status.
var (
	ErrExists   = verity.Errorf(verity.Conflict, "customer", "customer exists already")
	ErrNotFound = verity.Errorf(verity.NotFound, "customer", "no such customer")
)

// Customer is a customer's state; the service also serves it as is.
type Customer struct {
	CustomerID string `json:"customerId"`
	Name       string `json:"name"`
	Email      string `json:"email"`
}

// Registered reports whether the customer exists.
func (c Customer) Registered() bool { return c.CustomerID != "" }

// Decider is the customer's rules: registered once, then updated.
var Decider = sdk.Decider[Customer, any, events.CustomerEvent]{
	Decide: func(s Customer, cmd any) ([]events.CustomerEvent, error) {
		switch c := cmd.(type) {
		case Register:
			if s.Registered() {
				return nil, ErrExists
			}
			name, email, err := validate(c.Name, c.Email)
			if err != nil {
				return nil, err
			}
			return []events.CustomerEvent{events.CustomerRegistered{CustomerID: c.CustomerID, Name: name, Email: email}}, nil
		case Update:
			if !s.Registered() {
				return nil, ErrNotFound
			}
			name, email, err := validate(c.Name, c.Email)
			if err != nil {
				return nil, err
			}
			if name == s.Name && email == s.Email {
				return nil, nil
			}
			return []events.CustomerEvent{events.CustomerUpdated{CustomerID: s.CustomerID, Name: name, Email: email}}, nil
		}
		return nil, verity.Errorf(verity.Invalid, "customer", "unknown command %T", cmd)
	},
	Evolve: func(s Customer, e events.CustomerEvent) Customer {
		switch e := e.(type) {
		case events.CustomerRegistered:
			return Customer{CustomerID: e.CustomerID, Name: e.Name, Email: e.Email}
		case events.CustomerUpdated:
			s.Name, s.Email = e.Name, e.Email
		}
		return s
	},
}

// validate trims and checks a customer's name and email.
func validate(name, email string) (string, string, error) {
	name, email = strings.TrimSpace(name), strings.TrimSpace(email)
	if name == "" || len(name) > 200 {
		return "", "", verity.Errorf(verity.Invalid, "customer", "name %q must have 1 to 200 characters", name)
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return "", "", verity.Errorf(verity.Invalid, "customer", "email %q is not an email address", email)
	}
	return name, email, nil
}
