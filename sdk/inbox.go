package sdk

// Command sourcing: an HTTP command (from the gateway, or any writer) is appended as the
// first event (revision 0) of its own stream "<category>-<commandId>"; the service that
// owns the category handles it from a consumer group and records its outcome as the
// second event (revision 1) of the same stream. The stream is the command's audit trail
// and its status: one event means pending, two mean done.
//
// SKELETON (issue 5): signatures are fixed; the bodies are being written.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
)

// Outcome event types, the second event of a command stream.
const (
	CommandSucceededType = "CommandSucceeded"
	CommandRejectedType  = "CommandRejected"
	CommandFailedType    = "CommandFailed"
)

// CommandState is where a command stands.
type CommandState string

const (
	CommandPending   CommandState = "pending"
	CommandSucceeded CommandState = "succeeded"
	CommandRejected  CommandState = "rejected" // refused by the handler (bad input, business rule)
	CommandFailed    CommandState = "failed"   // the handler kept failing; retries exhausted
)

// Command is a command as submitted and as handled.
type Command struct {
	// ID is the command's id: the event id of revision 0 and the stream's id part.
	ID uuid.UUID
	// Category names the command stream's category, e.g. "ordercommand".
	Category string
	// Type is the command's type, e.g. "PlaceOrder".
	Type string
	// Data is the command's JSON body.
	Data json.RawMessage
	// Meta is the command's metadata (correlation id, traceparent, user...).
	Meta Metadata
	// Recorded is the command event as the log holds it (zero before it is appended).
	Recorded verity.RecordedEvent
}

// CommandOutcome is a command's status, as read from its stream.
type CommandOutcome struct {
	ID       uuid.UUID       `json:"commandId"`
	Category string          `json:"category"`
	Type     string          `json:"type"`
	State    CommandState    `json:"state"`
	Result   json.RawMessage `json:"result,omitempty"` // the handler's result (succeeded)
	Error    string          `json:"error,omitempty"`  // why (rejected, failed)
	Kind     string          `json:"kind,omitempty"`   // the verity error kind of a rejection, e.g. "Invalid"
	Position uint64          `json:"position"`         // log position of the command event
}

// CommandStream is the stream of command id in category: "<category>-<id>".
func CommandStream(category string, id uuid.UUID) string { return category + "-" + id.String() }

// SubmitCommand appends cmd as revision 0 of its command stream (expected: no stream).
// Submitting the same command (same id, type and data) again returns the first result
// and writes nothing, so an HTTP retry with the same Idempotency-Key is safe.
// Errors: Invalid (bad category, type or data), Conflict (another command has this id),
// and the store's errors.
func SubmitCommand(ctx context.Context, store verity.Store, cmd Command) (verity.AppendResult, error) {
	return verity.AppendResult{}, errors.New("sdk.SubmitCommand: not built yet")
}

// ReadCommandOutcome reads a command's status. Errors: NotFound (no such command).
func ReadCommandOutcome(ctx context.Context, store verity.Store, category string, id uuid.UUID) (CommandOutcome, error) {
	return CommandOutcome{}, errors.New("sdk.ReadCommandOutcome: not built yet")
}

// AwaitCommandOutcome waits until the command has an outcome, or ctx ends: then it returns
// the outcome read so far (state pending) and ctx's error.
func AwaitCommandOutcome(ctx context.Context, store verity.Store, category string, id uuid.UUID) (CommandOutcome, error) {
	return CommandOutcome{}, errors.New("sdk.AwaitCommandOutcome: not built yet")
}

// CommandFunc handles one command. A nil error records CommandSucceeded with result
// (marshalled to JSON; nil for none). An error wrapped with Reject (or any *verity.Error of
// kind Invalid, NotFound, Conflict, AlreadyExists, FailedPrecondition-like business kinds)
// records CommandRejected; any other error is retried by the group and, past
// MaxAttempts, recorded as CommandFailed. The handler may see a command more than once
// (at-least-once): make its effects idempotent, e.g. with WithCommandID(cmd.ID).
type CommandFunc func(ctx context.Context, cmd Command) (result any, err error)

// Reject marks err as the handler's refusal of the command: recorded as CommandRejected,
// not retried.
func Reject(err error) error { return err }

// CommandInboxConfig shapes a CommandInbox.
type CommandInboxConfig struct {
	// Category is the command streams' category, e.g. "ordercommand". Required.
	Category string
	// Group is the consumer group's name; default "<category>-inbox". The inbox creates
	// the group (a log group filtered on the category) when it does not exist.
	Group string
	// Consumers is how many commands are handled at once; default 1.
	Consumers int
	// MaxAttempts is how many times a failing handler is tried before CommandFailed;
	// default DefaultMaxAttempts.
	MaxAttempts int
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// CommandInbox handles the commands of one category.
type CommandInbox struct{}

// StartCommandInbox starts handling the commands of cfg.Category until ctx ends or Close.
func StartCommandInbox(ctx context.Context, groups verity.Groups, store verity.Store, cfg CommandInboxConfig, h CommandFunc) (*CommandInbox, error) {
	return nil, errors.New("sdk.StartCommandInbox: not built yet")
}

// Close stops handling and waits for the handlers in progress.
func (in *CommandInbox) Close() error { return nil }
