package registry

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

// Event types of the registry stream. Heartbeats are not recorded: a lease lives in memory
// and only its end (a removal) reaches the log.
const (
	// EventInstanceRegistered: an instance registered, or registered again with other
	// details. Data: the Instance, with the time it was recorded ("at").
	EventInstanceRegistered = "InstanceRegistered"
	// EventInstanceRemoved: an instance left, by Deregister or because its lease expired.
	// Data: service, id, reason (RemovedDeregistered or RemovedExpired), at.
	EventInstanceRemoved = "InstanceRemoved"
	// EventInstanceHealthChanged: SetHealth changed an instance's health. Data: service, id,
	// health, reason, at.
	EventInstanceHealthChanged = "InstanceHealthChanged"
	// EventRegistrySnapshot: the live instances as of this revision, written every
	// Config.SnapshotEvery events, so that a starting registry need not fold the whole
	// stream. It changes nothing: the events before it say the same. Data: at, and
	// instances, each as in InstanceRegistered with "at" its registration time.
	EventRegistrySnapshot = "RegistrySnapshot"
)

// Reasons of an InstanceRemoved event.
const (
	RemovedDeregistered = "deregistered"
	RemovedExpired      = "expired"
)

// record is the data of every registry event; each type uses the fields it names above.
type record struct {
	Service      string            `json:"service"`
	ID           string            `json:"id"`
	Address      string            `json:"address,omitempty"`
	Version      string            `json:"version,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Health       Health            `json:"health,omitempty"`
	HealthReason string            `json:"healthReason,omitempty"`
	// Reason is the removal's reason (InstanceRemoved).
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// snapshotRecord is the data of a RegistrySnapshot.
type snapshotRecord struct {
	At        time.Time `json:"at"`
	Instances []record  `json:"instances"`
}

func (s snapshotRecord) encode() (verity.EventData, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return verity.EventData{}, verity.Errorf(verity.Internal, "registry", "encode %s: %v", EventRegistrySnapshot, err)
	}
	return verity.EventData{ID: uuid.New(), Type: EventRegistrySnapshot, ContentType: verity.ContentTypeJSON, Data: data}, nil
}

// change is one decoded registry event: what the fold applies and watchers are told.
type change struct {
	typ string
	rec record
}

func registered(in Instance, at time.Time) change {
	return change{typ: EventInstanceRegistered, rec: record{
		Service: in.Service, ID: in.ID, Address: in.Address, Version: in.Version,
		Metadata: in.Metadata, Health: in.Health, HealthReason: in.HealthReason, At: at.Round(0),
	}}
}

func removed(in Instance, reason string, at time.Time) change {
	return change{typ: EventInstanceRemoved, rec: record{Service: in.Service, ID: in.ID, Reason: reason, At: at.Round(0)}}
}

func healthChanged(in Instance, h Health, reason string, at time.Time) change {
	return change{typ: EventInstanceHealthChanged, rec: record{Service: in.Service, ID: in.ID, Health: h, HealthReason: reason, At: at.Round(0)}}
}

func (c change) encode() (verity.EventData, error) {
	data, err := json.Marshal(c.rec)
	if err != nil {
		return verity.EventData{}, verity.Errorf(verity.Internal, "registry", "encode %s: %v", c.typ, err)
	}
	return verity.EventData{ID: uuid.New(), Type: c.typ, ContentType: verity.ContentTypeJSON, Data: data}, nil
}

// decode reads a registry event; ok is false for an event of another type, which the fold
// skips (a later version may add types).
func decode(e verity.RecordedEvent) (c change, ok bool, err error) {
	switch e.Type {
	case EventInstanceRegistered, EventInstanceRemoved, EventInstanceHealthChanged:
	default:
		return change{}, false, nil
	}
	c.typ = e.Type
	if err := json.Unmarshal(e.Data, &c.rec); err != nil {
		return change{}, false, fmt.Errorf("event %d (%s) of %q: %w", e.Revision, e.Type, e.Stream, err)
	}
	if c.rec.ID == "" || c.rec.Service == "" {
		return change{}, false, fmt.Errorf("event %d (%s) of %q: no service or id", e.Revision, e.Type, e.Stream)
	}
	return c, true, nil
}
