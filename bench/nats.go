package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// natsStore is the NATS JetStream peer: a server embedded in-process (no TCP port), file
// storage fsynced on every write (SyncAlways), one JetStream stream with subjects ev.>, each
// event stream a subject. The concurrency check is the per-subject expected last sequence;
// a multi-event append is an atomic batch publish, all or nothing like Verity's.
type natsStore struct {
	srv    *server.Server
	conns  []*nats.Conn
	js     []jetstream.JetStream
	stream jetstream.Stream
	next   atomic.Uint64 // round robin over conns
}

var _ system = (*natsStore)(nil)

const (
	natsStreamName = "EV"
	natsSubjPrefix = "ev."
	// natsConns connections share the writers, as an application's instances would.
	natsConns = 8
	// natsTimeout bounds every request the peer makes of the server.
	natsTimeout = 30 * time.Second
)

func openNATS(ctx context.Context, dir string) (_ *natsStore, err error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "verity-bench",
		DontListen: true,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
		// One open atomic batch per concurrent writer (the default allows 50 per stream).
		JetStreamLimits: server.JSLimitOpts{MaxBatchInflightPerStream: 1000, MaxBatchInflightTotal: 10_000},
	})
	if err != nil {
		return nil, fmt.Errorf("nats: new server: %w", err)
	}
	srv.Start()
	s := &natsStore{srv: srv}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if !srv.ReadyForConnections(natsTimeout) {
		return nil, errors.New("nats: server not ready after 30s")
	}
	for range natsConns {
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("verity-bench"))
		if err != nil {
			return nil, fmt.Errorf("nats: connect in-process: %w", err)
		}
		s.conns = append(s.conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("nats: jetstream: %w", err)
		}
		s.js = append(s.js, js)
	}
	ctx, cancel := context.WithTimeout(ctx, natsTimeout)
	defer cancel()
	s.stream, err = s.js[0].CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:               natsStreamName,
		Subjects:           []string{natsSubjPrefix + ">"},
		Storage:            jetstream.FileStorage,
		Replicas:           1,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: create stream %s: %w", natsStreamName, err)
	}
	return s, nil
}

func (s *natsStore) conn() (*nats.Conn, jetstream.JetStream) {
	i := s.next.Add(1) % uint64(len(s.conns))
	return s.conns[i], s.js[i]
}

// Append's token is the stream sequence of the subject's last message, 0 for none: what
// Nats-Expected-Last-Subject-Sequence compares with.
func (s *natsStore) Append(ctx context.Context, stream string, expected uint64, events [][]byte) (uint64, error) {
	if len(events) == 1 {
		_, js := s.conn()
		subj := natsSubjPrefix + stream
		m := &nats.Msg{Subject: subj, Data: events[0], Header: nats.Header{}}
		ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(expected))
		if err != nil {
			return 0, fmt.Errorf("nats: publish to %s: %w", subj, err)
		}
		return ack.Sequence, nil
	}
	next, err := s.AppendMulti(ctx, []streamAppend{{stream: stream, expected: expected, events: events}})
	if err != nil {
		return 0, err
	}
	return next[0], nil
}

// AppendMulti is one atomic batch publish (Nats-Batch-Id): every message but the last is
// published without a reply; the last commits the batch and is answered with its ack. The
// first message of each subject carries the subject's expected last sequence (a later one
// may not). The server commits a batch's messages at consecutive sequences, with one fsync.
func (s *natsStore) AppendMulti(ctx context.Context, parts []streamAppend) ([]uint64, error) {
	nc, _ := s.conn()
	id := nuid.Next()
	total := 0
	for _, p := range parts {
		total += len(p.events)
	}
	if total == 0 {
		return nil, errors.New("nats: empty batch")
	}
	var (
		reply *nats.Msg
		seq   int
		last  = make([]int, len(parts)) // each part's last message, counting from 1
	)
	for i, p := range parts {
		subj := natsSubjPrefix + p.stream
		for j, d := range p.events {
			seq++
			m := &nats.Msg{Subject: subj, Data: d, Header: nats.Header{}}
			m.Header.Set(server.JSBatchId, id)
			m.Header.Set(server.JSBatchSeq, strconv.Itoa(seq))
			if j == 0 {
				m.Header.Set(server.JSExpectedLastSubjSeq, strconv.FormatUint(p.expected, 10))
			}
			if seq < total {
				if err := nc.PublishMsg(m); err != nil {
					return nil, fmt.Errorf("nats: batch publish to %s: %w", subj, err)
				}
				continue
			}
			m.Header.Set(server.JSBatchCommit, "1")
			rctx, cancel := withDefaultTimeout(ctx)
			var err error
			reply, err = nc.RequestMsgWithContext(rctx, m)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("nats: batch commit to %s: %w", subj, err)
			}
		}
		last[i] = seq
	}
	var ack struct {
		Seq   uint64 `json:"seq"`
		Count int    `json:"count"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return nil, fmt.Errorf("nats: batch ack %q: %w", reply.Data, err)
	}
	if ack.Error != nil {
		return nil, fmt.Errorf("nats: batch of %d messages to %s...: %s (code %d, err_code %d)", total, parts[0].stream,
			ack.Error.Description, ack.Error.Code, ack.Error.ErrCode)
	}
	if ack.Count != total {
		return nil, fmt.Errorf("nats: batch to %s...: %d of %d messages committed", parts[0].stream, ack.Count, total)
	}
	next := make([]uint64, len(parts))
	for i := range parts {
		next[i] = ack.Seq - uint64(total-last[i])
	}
	return next, nil
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, natsTimeout)
}

// Replay reads the stream with an ordered consumer, the client's way to read it all in order.
func (s *natsStore) Replay(ctx context.Context, pageSize int, page func(int)) (int, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats: stream info: %w", err)
	}
	total := int(info.State.Msgs)
	if total == 0 {
		return 0, nil
	}
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, fmt.Errorf("nats: ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(pageSize, 500)))
	if err != nil {
		return 0, fmt.Errorf("nats: consume: %w", err)
	}
	defer it.Stop()
	var n, inPg, bytes int
	for n < total {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return n, fmt.Errorf("nats: replay after %d of %d messages: %w", n, total, err)
		}
		bytes += len(m.Data())
		n++
		if inPg++; inPg == pageSize {
			page(inPg)
			inPg = 0
		}
	}
	if inPg > 0 {
		page(inPg)
	}
	if bytes == 0 {
		return n, errors.New("nats: replay read no data")
	}
	return n, nil
}

// ReadStream reads a subject's first messages with one batched direct get
// ($JS.API.DIRECT.GET, next_by_subj), answered by the messages then an end-of-batch status.
func (s *natsStore) ReadStream(ctx context.Context, stream string, limit int) (int, error) {
	nc, _ := s.conn()
	subj := natsSubjPrefix + stream
	req, err := json.Marshal(server.JSApiMsgGetRequest{Seq: 1, NextFor: subj, Batch: limit})
	if err != nil {
		return 0, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("nats: subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+natsStreamName, inbox, req); err != nil {
		return 0, fmt.Errorf("nats: direct get %s: %w", subj, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	n := 0
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return n, fmt.Errorf("nats: direct get %s after %d messages: %w", subj, n, err)
		}
		if st := m.Header.Get("Status"); st != "" {
			if st == "204" { // end of batch
				return n, nil
			}
			return n, fmt.Errorf("nats: direct get %s: status %s %s", subj, st, m.Header.Get("Description"))
		}
		if got := m.Header.Get(jetstream.SubjectHeader); got != subj {
			return n, fmt.Errorf("nats: direct get %s returned a message of %s", subj, got)
		}
		n++
	}
}

func (s *natsStore) Subscribe(ctx context.Context, fn func([]byte)) (io.Closer, error) {
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("nats: ordered consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { fn(m.Data()) })
	if err != nil {
		return nil, fmt.Errorf("nats: consume: %w", err)
	}
	return natsSub{cc}, nil
}

type natsSub struct{ cc jetstream.ConsumeContext }

func (s natsSub) Close() error {
	s.cc.Stop()
	select {
	case <-s.cc.Closed():
		return nil
	case <-time.After(natsTimeout):
		return errors.New("nats: consumer did not stop in 30s")
	}
}

func (s *natsStore) Close() error {
	for _, nc := range s.conns {
		nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	return nil
}
