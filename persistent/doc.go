// Package persistent runs persistent subscriptions (consumer groups): it implements
// verity.Groups over any verity.Store, the embedded engine or the network client. The
// server exposes it through its gRPC and HTTP front ends; package grouptest holds the
// contract suite every implementation passes.
//
// # How a group runs
//
// Each group is one goroutine (an actor) that owns all of the group's state; consumers,
// acks and admin calls reach it through a channel, and each consumer receives from a
// queue of its own. A second goroutine reads the source with Store.Subscribe (catch-up,
// then live) and hands events over a bounded channel: when the group holds
// HistoryBufferSize (catching up) or LiveBufferSize (live) events waiting for a consumer,
// it stops pulling and the store's subscription falls back to reading from disk.
//
// # What is kept in the log
//
// Definitions: every create, update and delete is an event of ConfigStream, folded when a
// Manager starts, so a new Manager over the same store finds its groups again. Each
// definition carries an incarnation id; the checkpoint and parked records of a deleted
// group of the same name are ignored by a new one.
//
// Checkpoints: verity.CheckpointStreamOf(source, group) holds $SubscriptionCheckpoint
// events (the stream's $maxCount keeps only the last few). A checkpoint C means: every
// event of the source at or below C (a revision for a stream group, a position for a log
// group) was acknowledged, skipped, or durably parked. For a log group the store's
// MessageCheckpoint and CaughtUp messages move C past events the filter leaves out. The
// checkpoint is written per CheckpointAfter / CheckpointLowerBound / CheckpointUpperBound
// for acks; a move made only by such markers (left-out events, internal streams, events
// already parked) is written once CheckpointAfter has passed since it began, unless all it
// passed is checkpoints this Manager wrote (log groups would otherwise keep writing for
// each other on an idle log). It is also written when the group stops (Close,
// RestartGroups, UpdateGroup); a group's store calls get Config.StopTimeout to finish
// once it is asked to stop, then they are cancelled, so a hanging store cannot hang Close.
//
// Parked events: verity.ParkedStreamOf(source, group) holds a $parked event per parked
// event (original stream, revision, position, event id, reason, retry count, whether it
// was held by quarantine) and a $replayParked event per ReplayParked call (every parked
// event up to a revision of the parked stream is back in line). The checkpoint event also
// carries the parked cursor: every parked event at or below it was replayed and handled.
// At start the group reads the parked stream past the cursor: events covered by a replay
// request are put back in line, the others count as parked. A parked event is therefore
// never lost by a restart, and one whose replay was handled before the last checkpoint
// write is never replayed again.
//
// # Delivery guarantees
//
// At least once. After a restart (RestartGroups, or a new Manager over a reopened store)
// every event past the checkpoint is delivered again, except events already parked.
// Acks after the last checkpoint write are therefore not remembered by a crash: handlers
// must be idempotent. An event not acknowledged within MessageTimeout, nacked with
// NackRetry, or left in flight by a consumer that disconnects (Close, NackStop) counts a
// retry and goes back in line, ahead of new events; past MaxRetryCount retries it is
// parked. Parked events replayed with ReplayParked are delivered before anything else.
//
// # Strategies and order
//
// RoundRobin gives each event to the next consumer with room (MaxInFlight is per consumer
// back-pressure); DispatchToSingle fills the first consumer that has room. Pinned gives all
// the events of a stream to one consumer while it stays connected (new streams go to the
// consumer with the fewest pins); PinnedByCorrelation does the same by the "$correlationId"
// or "correlationId" of the event's JSON metadata, else by stream. When a pinned consumer
// leaves, its streams move to the others; its events in flight are redelivered first, in
// order. Within a stream a pinned group delivers in revision order; a retry (timeout,
// nack) is redelivered after later events of its stream that were already in flight.
//
// # Ordered quarantine
//
// With QuarantineOrdered (the default for the pinned strategies): once an event of stream
// S is parked, every later event of S (one with a higher revision, log groups included)
// that reaches the front of the line is parked too, in order, with the reason
// "held behind parked event <id>". S is frozen while every other stream flows; the
// checkpoint keeps moving and memory stays bounded. ReplayParked puts S's parked events
// back in line, oldest first; they are delivered one at a time per stream (the next only
// once the previous is acked, skipped or parked again), so S is handled in order. While
// S's replayed events are in line, S's new events wait in memory behind them. If a
// replayed event is parked again, S's later replayed events are held again behind it. The
// quarantine of S lifts when none of its events is parked or in line. At start the
// quarantine is rebuilt from the parked stream. A log group leaves out the streams this
// package writes (ConfigStream, $persistentsubscription-*), so it never delivers its own
// checkpoints.
package persistent
