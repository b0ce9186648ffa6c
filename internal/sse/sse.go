// Package sse writes server-sent events (text/event-stream) for Verity's HTTP front ends:
// the HTTP API's subscriptions and stats, and the registry's watch.
package sse

import (
	"bytes"
	"errors"
	"net/http"
	"time"
)

// Writer writes one stream of server-sent events, flushing each message, each write
// bounded by a deadline so that a stalled client cannot hold the stream for ever.
type Writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     bytes.Buffer
	failed  bool // a write failed: the connection is of no further use
}

// Start answers 200 with the headers of an event stream and returns its Writer. The
// server's read deadline is lifted (net/http would end the request when its background read
// times out); each write has a deadline of writeTimeout instead. Call End when done.
func Start(w http.ResponseWriter, writeTimeout time.Duration) *Writer {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // tell nginx not to buffer the stream
	w.WriteHeader(http.StatusOK)
	return &Writer{w: w, rc: rc, timeout: writeTimeout}
}

// End lifts the write deadline, unless a write failed: net/http does not reset a deadline
// set by a handler (unless the server has a WriteTimeout of its own), so a kept-alive
// connection would carry it into its next request.
func (s *Writer) End() {
	if !s.failed {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// Message writes an event of type event with data, and an id unless it is empty. A line
// break inside data starts another data field, as the format wants.
func (s *Writer) Message(event, id string, data []byte) error {
	s.buf.Reset()
	if id != "" {
		s.buf.WriteString("id: " + id + "\n")
	}
	s.buf.WriteString("event: " + event + "\n")
	for line := range bytes.Lines(data) {
		s.buf.WriteString("data: ")
		s.buf.Write(bytes.TrimRight(line, "\r\n"))
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
	return s.flush()
}

// Comment writes a comment line, which clients ignore: a heartbeat, or a first sign of
// life.
func (s *Writer) Comment(text string) error {
	s.buf.Reset()
	s.buf.WriteString(": " + text + "\n\n")
	return s.flush()
}

func (s *Writer) flush() error {
	err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if err == nil || errors.Is(err, http.ErrNotSupported) {
		if _, err = s.w.Write(s.buf.Bytes()); err == nil {
			err = s.rc.Flush()
		}
	}
	if err != nil {
		s.failed = true
	}
	return err
}
