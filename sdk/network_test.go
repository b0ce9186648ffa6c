package sdk_test

import (
	"context"
	"net"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
)

// backend gives a test a store and its consumer groups: the embedded engine directly, or
// the same served over gRPC and reached through the network client.
type backend struct {
	name string
	open func(t testing.TB) (verity.Store, verity.Groups)
}

var backends = []backend{
	{"embedded", func(t testing.TB) (verity.Store, verity.Groups) {
		store := openEngine(t)
		return store, openGroups(t, store)
	}},
	{"network", func(t testing.TB) (verity.Store, verity.Groups) {
		store := openEngine(t)
		access := &admin{store: store, groups: openGroups(t, store)}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		grpcapi.New(access, grpcapi.Options{}).Register(srv)
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(lis)
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-served
		})
		c, err := client.Dial(lis.Addr().String(), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, c
	}},
}

// admin lets every caller in as an admin.
type admin struct {
	store  verity.Store
	groups verity.Groups
}

func (a *admin) Authenticate(context.Context, string) (auth.Principal, error) {
	return auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}, nil
}
func (a *admin) Store(auth.Principal) verity.Store   { return a.store }
func (a *admin) Groups(auth.Principal) verity.Groups { return a.groups }
