package kurrentdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/persistent"
	"github.com/verity-dev/verity/storetest"
)

// fakeAccess authenticates everyone as principal (or fails with authErr) and gives the
// store, wrapped by wrap when set.
type fakeAccess struct {
	principal auth.Principal
	authErr   error
	store     verity.Store
	wrap      func(verity.Store) verity.Store
	groups    verity.Groups

	mu   sync.Mutex
	seen []string // authorization values received
}

func (a *fakeAccess) Authenticate(_ context.Context, authorization string) (auth.Principal, error) {
	a.mu.Lock()
	a.seen = append(a.seen, authorization)
	a.mu.Unlock()
	if a.authErr != nil {
		return auth.Principal{}, a.authErr
	}
	return a.principal, nil
}

func (a *fakeAccess) Store(auth.Principal) verity.Store {
	if a.wrap != nil {
		return a.wrap(a.store)
	}
	return a.store
}

func (a *fakeAccess) Groups(auth.Principal) verity.Groups { return a.groups }

func adminAccess(st verity.Store) *fakeAccess {
	return &fakeAccess{principal: auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, store: st}
}

// deniedStore refuses every call, as an access-checking store does for a caller without
// rights.
type deniedStore struct{ verity.Store }

func (deniedStore) deny(op, stream string) error {
	return &verity.Error{Kind: verity.PermissionDenied, Op: op, Stream: stream, Message: "user \"bob\" may not do this"}
}
func (d deniedStore) Append(_ context.Context, stream string, _ verity.ExpectedRevision, _ ...verity.EventData) (verity.AppendResult, error) {
	return verity.AppendResult{}, d.deny("append", stream)
}
func (d deniedStore) ReadStream(_ context.Context, stream string, _ verity.ReadStreamOptions) ([]verity.RecordedEvent, error) {
	return nil, d.deny("read stream", stream)
}
func (d deniedStore) ReadAll(context.Context, verity.ReadAllOptions) ([]verity.RecordedEvent, error) {
	return nil, d.deny("read all", "")
}
func (d deniedStore) Subscribe(_ context.Context, o verity.SubscribeOptions) (verity.Subscription, error) {
	return nil, d.deny("subscribe", o.Stream)
}
func (d deniedStore) DeleteStream(_ context.Context, stream string, _ verity.ExpectedRevision) (verity.DeleteResult, error) {
	return verity.DeleteResult{}, d.deny("delete", stream)
}
func (d deniedStore) GetStreamMetadata(_ context.Context, stream string) (verity.StreamMetadataResult, error) {
	return verity.StreamMetadataResult{}, d.deny("get metadata", stream)
}
func (d deniedStore) SetStreamMetadata(_ context.Context, stream string, _ verity.ExpectedRevision, _ verity.StreamMetadata) (verity.AppendResult, error) {
	return verity.AppendResult{}, d.deny("set metadata", stream)
}

// env is one test's server: an engine behind the service on a loopback port.
type env struct {
	store  verity.Store
	groups *persistent.Manager
	clock  *storetest.FakeClock
	access *fakeAccess
	svc    *Service
	addr   string
}

type envOption func(*env, *Options)

func withOptions(f func(*Options)) envOption { return func(_ *env, o *Options) { f(o) } }
func withAccess(f func(*fakeAccess)) envOption {
	return func(e *env, _ *Options) { f(e.access) }
}

// newEnv starts a grpc.Server with the service on 127.0.0.1:0 over a fresh engine whose
// clock the test controls; all of it stops at the test's end.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	clock := storetest.NewFakeClock(time.Now().UTC())
	st, err := engine.Open(engine.Config{Dir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	groups, err := persistent.New(st, persistent.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("persistent.New: %v", err)
	}
	e := &env{store: st, groups: groups, clock: clock, access: adminAccess(st)}
	e.access.groups = groups
	o := Options{}
	for _, f := range opts {
		f(e, &o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	e.svc = New(e.access, o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	gs := grpc.NewServer()
	e.svc.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	e.addr = lis.Addr().String()
	t.Cleanup(func() {
		gs.Stop()
		<-done
		if err := groups.Close(); err != nil {
			t.Errorf("close groups: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	return e
}

// client returns the official KurrentDB Go client connected to the env, closed at the end.
func (e *env) client(t testing.TB) *kurrentdb.Client {
	t.Helper()
	conf, err := kurrentdb.ParseConnectionString(fmt.Sprintf("kurrentdb://%s?tls=false", e.addr))
	if err != nil {
		t.Fatalf("connection string: %v", err)
	}
	conf.Logger = kurrentdb.NoopLogging()
	c, err := kurrentdb.NewClient(conf)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// conn returns a raw gRPC connection to the env, for requests the official client never
// sends.
func (e *env) conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
