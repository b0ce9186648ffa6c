package server

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// One port serves two protocols, each by the server made for it: gRPC by grpc-go's own
// HTTP/2 transport (about twice the throughput of grpc.Server.ServeHTTP behind net/http,
// measured: docs/benchmarks.md) and HTTP/JSON by net/http. A connection is classified once,
// when it opens:
//
//   - TLS: by ALPN. gRPC clients offer only "h2"; curl and browsers offer "http/1.1" too and
//     are given HTTP/1.1. So an "h2" connection is gRPC, anything else is HTTP.
//   - Plaintext: by the first bytes. The HTTP/2 client preface ("PRI * HTTP/2.0") is gRPC
//     over h2c with prior knowledge; anything else is HTTP/1.x.
//
// Classification runs on its own goroutine per connection under a deadline, so a client
// that connects and says nothing holds neither the accept loop nor a connection for long.

// h2Preface starts every HTTP/2 connection with prior knowledge.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// splitListener accepts connections on ln and hands each to the gRPC or the HTTP listener.
type splitListener struct {
	ln      net.Listener
	tls     *tls.Config // nil: plaintext
	timeout time.Duration

	grpc, http *connQueue
	wg         sync.WaitGroup
}

func newSplitListener(ln net.Listener, tc *tls.Config, timeout time.Duration) *splitListener {
	s := &splitListener{ln: ln, timeout: timeout, grpc: newConnQueue(ln.Addr()), http: newConnQueue(ln.Addr())}
	if tc != nil {
		s.tls = alpnSplitConfig(tc)
	}
	return s
}

// alpnSplitConfig gives a client that offers HTTP/1.1 HTTP/1.1, and one that offers only
// h2 (a gRPC client) h2.
func alpnSplitConfig(base *tls.Config) *tls.Config {
	h2 := base.Clone()
	h2.NextProtos = []string{"h2"}
	h1 := base.Clone()
	h1.NextProtos = []string{"http/1.1"}
	c := base.Clone()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, "h2") && !slices.Contains(hello.SupportedProtos, "http/1.1") {
			return h2, nil
		}
		return h1, nil
	}
	return c
}

// serve accepts until ln is closed. The queues are closed by the servers that accept from
// them (Close, when they stop); a connection still being classified then is dropped.
func (s *splitListener) serve() {
	defer s.wg.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.classify(c)
		}()
	}
}

func (s *splitListener) classify(c net.Conn) {
	c.SetDeadline(time.Now().Add(s.timeout))
	if s.tls != nil {
		tc := tls.Server(c, s.tls)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		c.SetDeadline(time.Time{})
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			s.grpc.put(tc)
		} else {
			s.http.put(tc)
		}
		return
	}
	br := bufio.NewReaderSize(c, len(h2Preface))
	head, err := br.Peek(4)
	if err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if string(head) == h2Preface[:4] {
		s.grpc.put(pc)
	} else {
		s.http.put(pc)
	}
}

// peekedConn is a connection whose first bytes were read ahead into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if p.r.Buffered() > 0 {
		return p.r.Read(b)
	}
	return p.Conn.Read(b)
}

// connQueue is a net.Listener fed with classified connections.
type connQueue struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) close() { q.closed.Do(func() { close(q.done) }) }

// Close stops Accept; the servers call it when they stop.
func (q *connQueue) Close() error {
	q.close()
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
