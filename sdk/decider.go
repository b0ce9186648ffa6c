package sdk

import (
	"strconv"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Decider is the pure core of an event-sourced entity: S is its state, C its commands, E
// its events (usually an interface that the event types implement, or any). A Decider does
// no I/O; a CommandHandler runs it against a stream.
type Decider[S, C, E any] struct {
	// Initial returns the state of an entity with no events; nil means the zero S. It is
	// a function so that states holding maps or slices are never shared between entities.
	Initial func() S
	// Decide turns a command into the events that record its effect, given the current
	// state, or refuses it with an error (a domain error, returned to the caller as-is).
	// Deciding no events is allowed: the command then changes nothing.
	Decide func(state S, cmd C) ([]E, error)
	// Evolve applies one event to the state and returns the new state. It must not fail:
	// an event is a fact.
	Evolve func(state S, e E) S
}

// Validate reports a Decider with a missing function (Invalid).
func (d Decider[S, C, E]) Validate() error {
	if d.Decide == nil {
		return verity.Errorf(verity.Invalid, "decider", "Decide is nil")
	}
	if d.Evolve == nil {
		return verity.Errorf(verity.Invalid, "decider", "Evolve is nil")
	}
	return nil
}

// InitialState returns Initial(), or the zero S when Initial is nil.
func (d Decider[S, C, E]) InitialState() S {
	if d.Initial == nil {
		var zero S
		return zero
	}
	return d.Initial()
}

// Fold applies events to a state in order.
func (d Decider[S, C, E]) Fold(state S, events ...E) S {
	for _, e := range events {
		state = d.Evolve(state, e)
	}
	return state
}

// EventID returns the id of the index-th event (from 0) that the command with id
// commandID produces: the UUIDv5 of the index in the command id's namespace. The same
// command id always yields the same event ids, so appending them again is recognised as a
// retry.
func EventID(commandID uuid.UUID, index int) uuid.UUID {
	return uuid.NewSHA1(commandID, []byte("event/"+strconv.Itoa(index)))
}

// CommandID derives the id of a command issued in reaction to an event: the UUIDv5 of key
// in the event id's namespace. A redelivered event thus issues commands with the same ids,
// whose events are then not appended twice.
func CommandID(causeID uuid.UUID, key string) uuid.UUID {
	return uuid.NewSHA1(causeID, []byte("command/"+key))
}
