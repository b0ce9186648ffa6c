package client_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
)

// adminAccess lets every caller in as an admin, and records the authorization each call
// carried.
type adminAccess struct {
	store verity.Store
	seen  chan string // when non-nil, receives each call's authorization
	// deny, when set, is returned by Authenticate.
	deny error
	// groups, when set, are the consumer groups of every caller.
	groups verity.Groups
}

func (a *adminAccess) Authenticate(ctx context.Context, authorization string) (auth.Principal, error) {
	if a.seen != nil {
		select {
		case a.seen <- authorization:
		default:
		}
	}
	if a.deny != nil {
		return auth.Principal{}, a.deny
	}
	return auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, nil
}

func (a *adminAccess) Store(auth.Principal) verity.Store { return a.store }

func (a *adminAccess) Groups(auth.Principal) verity.Groups { return a.groups }

// served is a client of an engine served by a grpcapi.Service on 127.0.0.1. Closing it
// closes the client, then the server, then the engine, so that a test counting goroutines
// after Close sees none of them.
type served struct {
	*client.Client
	dir    string
	srv    *grpc.Server
	engine *engine.Engine
	addr   string
	// groups, when set, are closed after the server and before the engine.
	groups interface{ Close() error }
}

func (s *served) Close() error {
	err := s.Client.Close()
	s.srv.Stop()
	if s.groups != nil {
		_ = s.groups.Close()
	}
	if eerr := s.engine.Close(); err == nil && eerr != nil && !errors.Is(eerr, verity.ErrUnavailable) {
		err = eerr
	}
	return err
}

// serve opens the engine in dir with cfg, serves it on a fresh port and dials it.
func serve(t testing.TB, dir string, now func() time.Time, svcOpts grpcapi.Options, clientOpts client.Options) *served {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: dir, Now: now})
	if err != nil {
		t.Fatalf("engine.Open(%s): %v", dir, err)
	}
	return serveStore(t, e, dir, &adminAccess{store: e}, svcOpts, clientOpts)
}

func serveStore(t testing.TB, e *engine.Engine, dir string, access grpcapi.Access, svcOpts grpcapi.Options, clientOpts client.Options) *served {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	grpcapi.New(access, svcOpts).Register(srv)
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		_ = srv.Serve(lis)
	}()
	c, err := client.Dial(lis.Addr().String(), clientOpts)
	if err != nil {
		srv.Stop()
		<-serveDone
		e.Close()
		t.Fatalf("Dial: %v", err)
	}
	s := &served{Client: c, dir: dir, srv: srv, engine: e, addr: lis.Addr().String()}
	if a, ok := access.(*adminAccess); ok && a.groups != nil {
		s.groups = a.groups.(interface{ Close() error })
	}
	t.Cleanup(func() {
		_ = s.Close()
		<-serveDone
	})
	return s
}
