package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/storetest"
)

// Credentials the fake Access knows.
const (
	adminAuth  = "Basic YWRtaW46Y2hhbmdlaXQ=" // admin:changeit
	nobodyAuth = "Bearer nobody"              // authenticated, but every call is denied
	opsAuth    = "Bearer ops"                 // a second admin, another client for the limits
	readerAuth = "Bearer reader"              // may read every stream but those named secret*
	watchAuth  = "Bearer watcher"             // role $ops, every store call denied
	anonAuth   = "Bearer anonymous"           // the anonymous caller of a server with auth on
)

// fakeAccess lets anonymous callers and admin in as admins with the raw store, authenticates
// "nobody" with a store that denies everything, and rejects any other credentials.
type fakeAccess struct {
	store  *countingStore
	groups verity.Groups // nil: the server has no consumer groups
}

func (a *fakeAccess) Authenticate(_ context.Context, authorization string) (auth.Principal, error) {
	switch authorization {
	case "", adminAuth:
		return auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, nil
	case opsAuth:
		return auth.Principal{Name: "ops", Roles: []string{auth.RoleAdmins}}, nil
	case nobodyAuth:
		return auth.Principal{Name: "nobody"}, nil
	case readerAuth:
		return auth.Principal{Name: "reader"}, nil
	case watchAuth:
		return auth.Principal{Name: "watcher", Roles: []string{auth.RoleOps}}, nil
	case anonAuth:
		return auth.Principal{}, nil
	}
	return auth.Principal{}, verity.Errorf(verity.Unauthenticated, "authenticate", "wrong user name or password")
}

func (a *fakeAccess) Store(p auth.Principal) verity.Store {
	if p.IsAdmin() {
		return a.store
	}
	if p.Name == "reader" {
		return readerStore{Store: a.store}
	}
	return denyStore{}
}

// readerStore lets "reader" read every stream but those whose name starts with "secret",
// and the log only through a filter, as auth's store does for a user limited by rules.
type readerStore struct{ verity.Store }

func (s readerStore) ReadStream(ctx context.Context, stream string, opts verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	if strings.HasPrefix(stream, "secret") || verity.IsSystemStream(stream) {
		return nil, verity.Errorf(verity.PermissionDenied, "read stream", "user reader may not read stream %q", stream)
	}
	return s.Store.ReadStream(ctx, stream, opts)
}

func (s readerStore) ReadAll(ctx context.Context, opts verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	if opts.Filter.IsZero() {
		return nil, verity.Errorf(verity.PermissionDenied, "read all", "user reader may not read $all without a filter")
	}
	return s.Store.ReadAll(ctx, opts)
}

func (a *fakeAccess) Groups(p auth.Principal) verity.Groups {
	if p.IsAdmin() || a.groups == nil {
		return a.groups
	}
	return denyGroups{}
}

// countingStore is the engine, counting the subscriptions open on it so that tests can see
// that a client going away releases its subscription.
type countingStore struct {
	verity.Store
	open atomic.Int64
}

func (s *countingStore) Subscribe(ctx context.Context, opts verity.SubscribeOptions) (verity.Subscription, error) {
	sub, err := s.Store.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedSub{Subscription: sub, s: s}, nil
}

type countedSub struct {
	verity.Subscription
	s    *countingStore
	once sync.Once
}

func (c *countedSub) Close() error {
	c.once.Do(func() { c.s.open.Add(-1) })
	return c.Subscription.Close()
}

// denyStore refuses everything, as auth's store does for a caller without rights.
type denyStore struct{}

func denied(op string) error {
	return verity.Errorf(verity.PermissionDenied, op, "user nobody may not do this")
}

func (denyStore) Append(context.Context, string, verity.ExpectedRevision, ...verity.EventData) (verity.AppendResult, error) {
	return verity.AppendResult{}, denied("append")
}
func (denyStore) AppendMulti(context.Context, ...verity.StreamAppend) ([]verity.AppendResult, error) {
	return nil, denied("append")
}
func (denyStore) ReadStream(context.Context, string, verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	return nil, denied("read")
}
func (denyStore) ReadAll(context.Context, verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	return nil, denied("read")
}
func (denyStore) Subscribe(context.Context, verity.SubscribeOptions) (verity.Subscription, error) {
	return nil, denied("subscribe")
}
func (denyStore) GetStreamMetadata(context.Context, string) (verity.StreamMetadataResult, error) {
	return verity.StreamMetadataResult{}, denied("get metadata")
}
func (denyStore) SetStreamMetadata(context.Context, string, verity.ExpectedRevision, verity.StreamMetadata) (verity.AppendResult, error) {
	return verity.AppendResult{}, denied("set metadata")
}
func (denyStore) DeleteStream(context.Context, string, verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, denied("delete")
}
func (denyStore) TombstoneStream(context.Context, string, verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, denied("tombstone")
}
func (denyStore) Close() error { return nil }

// env is a real engine behind the API on a test server.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	store *countingStore
	clock *storetest.FakeClock
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	clock := storetest.NewFakeClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	e, err := engine.Open(engine.Config{Dir: t.TempDir(), Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	store := &countingStore{Store: e}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(New(&fakeAccess{store: store}, opts))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: store, clock: clock}
}

// with returns e reporting to t, for use inside a subtest.
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorOf decodes an error response.
func (r response) errorOf(t testing.TB) errorJSON {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return b.Error
}

// do sends a request; headers come in name, value pairs.
func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// must sends a request and fails the test unless it is answered with status; it decodes
// the answer into out when out is not nil.
func (e *env) must(status int, out any, method, path, body string, headers ...string) response {
	e.t.Helper()
	r := e.do(method, path, body, headers...)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("%s %s: body %q: %v", method, path, r.body, err)
		}
	}
	return r
}

// page is a read's answer as a client decodes it.
type page struct {
	Events []struct {
		ID             string          `json:"id"`
		Stream         string          `json:"stream"`
		Type           string          `json:"type"`
		Revision       uint64          `json:"revision"`
		Position       uint64          `json:"position"`
		Created        string          `json:"created"`
		ContentType    string          `json:"contentType"`
		Data           json.RawMessage `json:"data"`
		DataBase64     string          `json:"dataBase64"`
		Metadata       json.RawMessage `json:"metadata"`
		MetadataBase64 string          `json:"metadataBase64"`
	} `json:"events"`
	End  bool   `json:"end"`
	Next string `json:"next"`
}

func (p page) revisions() []uint64 {
	out := make([]uint64, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.Revision
	}
	return out
}

func (p page) positions() []uint64 {
	out := make([]uint64, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.Position
	}
	return out
}

func (p page) types() []string {
	out := make([]string, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.Type
	}
	return out
}

// read reads a URL that must answer 200 with a page.
func (e *env) read(path string, headers ...string) page {
	e.t.Helper()
	var p page
	e.must(http.StatusOK, &p, "GET", path, "", headers...)
	return p
}

// appendN appends n events of type typ to stream through the API.
func (e *env) appendN(stream, typ string, n int) {
	e.t.Helper()
	evs := make([]string, n)
	for i := range evs {
		evs[i] = `{"type":"` + typ + `","data":{"n":` + itoa(i) + `}}`
	}
	e.must(http.StatusCreated, nil, "POST", "/streams/"+stream, "["+strings.Join(evs, ",")+"]")
}

func itoa(n int) string { return jsonNumber(uint64(n)) }

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// sseEvent is one server-sent event as a client parses it.
type sseEvent struct {
	id, event, data string
}

// sseStream reads server-sent events from a live response.
type sseStream struct {
	t        testing.TB
	resp     *http.Response
	rd       *bufio.Reader
	cancel   context.CancelFunc
	comments []string
}

// subscribe opens an event stream; it fails the test unless the answer is 200
// text/event-stream. The stream is closed at the end of the test, or by close.
func (e *env) subscribe(path string, headers ...string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	if err != nil {
		cancel()
		e.t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		e.t.Fatalf("GET %s: status %d, content type %q, body %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{t: e.t, resp: resp, rd: bufio.NewReader(resp.Body), cancel: cancel}
	e.t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, skipping comments (which it records).
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	var ev sseEvent
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			s.t.Fatalf("event stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			s.comments = append(s.comments, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[len("data: "):]
		default:
			s.t.Fatalf("unexpected event stream line %q", line)
		}
	}
}

// nextN returns the next n events.
func (s *sseStream) nextN(n int) []sseEvent {
	s.t.Helper()
	out := make([]sseEvent, n)
	for i := range out {
		out[i] = s.next()
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
