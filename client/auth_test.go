package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/protocol/grpcapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func openEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCredentialsAreSent checks the "authorization" metadata the server sees for each way
// of giving credentials, on unary calls, reads and subscriptions alike.
func TestCredentialsAreSent(t *testing.T) {
	cases := []struct {
		name string
		opts client.Options
		want string
	}{
		{"no credentials send none", client.Options{}, ""},
		{"a username and password are sent as basic authentication", client.Options{Username: "admin", Password: "changeit"}, "Basic YWRtaW46Y2hhbmdlaXQ="},
		{"a token is sent as a bearer token", client.Options{Token: "tok-123"}, "Bearer tok-123"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := openEngine(t)
			access := &adminAccess{store: e, seen: make(chan string, 1)}
			s := serveStore(t, e, "", access, grpcapi.Options{}, c.opts)
			expect := func(what string) {
				t.Helper()
				select {
				case got := <-access.seen:
					if got != c.want {
						t.Fatalf("%s: the server saw authorization %q, want %q", what, got, c.want)
					}
				default:
					t.Fatalf("%s: the server authenticated nothing", what)
				}
			}
			if _, err := s.Append(t.Context(), "order-1", verity.Any(), verity.EventData{ID: uuid.New(), Type: "T", Data: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			expect("Append")
			if _, err := s.ReadAll(t.Context(), verity.ReadAllOptions{}); err != nil {
				t.Fatal(err)
			}
			expect("ReadAll")
			sub, err := s.Subscribe(t.Context(), verity.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sub.Close()
			expect("Subscribe")
		})
	}
}

// TestWrongCredentialsAreUnauthenticated: whatever error Access gives, the client sees
// Unauthenticated, at Subscribe too, and nothing is written.
func TestWrongCredentialsAreUnauthenticated(t *testing.T) {
	for _, deny := range []error{
		verity.Errorf(verity.Unauthenticated, "authenticate", "wrong password for user %q", "admin"),
		errors.New("bad credentials"),
	} {
		e := openEngine(t)
		s := serveStore(t, e, "", &adminAccess{store: e, deny: deny}, grpcapi.Options{}, client.Options{Username: "admin", Password: "wrong"})
		for _, call := range calls {
			err := call.do(t.Context(), s)
			if !errors.Is(err, verity.ErrUnauthenticated) {
				t.Errorf("%s with wrong credentials (%v): got %v, want Unauthenticated", call.name, deny, err)
			}
		}
		if evs, err := e.ReadAll(t.Context(), verity.ReadAllOptions{}); err != nil || len(evs) != 0 {
			t.Fatalf("the log holds %d events after denied calls (%v)", len(evs), err)
		}
	}
}

func TestDialRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name   string
		target string
		opts   client.Options
		want   string
	}{
		{"a token and a password", "127.0.0.1:1", client.Options{Token: "t", Username: "u", Password: "p"}, "either Token"},
		{"a password without a username", "127.0.0.1:1", client.Options{Password: "p"}, "Username is empty"},
		{"a username with a colon", "127.0.0.1:1", client.Options{Username: "a:b"}, `"a:b"`},
		{"a negative message size", "127.0.0.1:1", client.Options{MaxMessageBytes: -1}, "MaxMessageBytes"},
		{"a plaintext URL with TLS", "http://127.0.0.1:1", client.Options{TLS: &tls.Config{}}, "https://"},
		{"an empty target", "", client.Options{}, "empty target"},
	}
	for _, c := range cases {
		t.Run(c.name+" is invalid", func(t *testing.T) {
			c2, err := client.Dial(c.target, c.opts)
			if err == nil {
				c2.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Dial: %v, want Invalid mentioning %s", err, c.want)
			}
		})
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	c, err := client.Dial("http://"+addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.ReadAll(t.Context(), verity.ReadAllOptions{})
	if !errors.Is(err, verity.ErrUnavailable) {
		t.Fatalf("ReadAll from %s where nothing listens: %v, want Unavailable", addr, err)
	}
}

// TestTLS serves over TLS with a certificate made for the test and checks that a client
// trusting it works, and that one trusting nothing fails with Unavailable.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	e := openEngine(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	grpcapi.New(&adminAccess{store: e}, grpcapi.Options{}).Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done; e.Close() })

	good, err := client.Dial("https://"+lis.Addr().String(), client.Options{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Append(t.Context(), "order-1", verity.NoStream(), verity.EventData{Type: "T", Data: []byte(`{}`)}); err != nil {
		t.Fatalf("Append over TLS: %v", err)
	}
	untrusting, err := client.Dial(lis.Addr().String(), client.Options{TLS: &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if _, err := untrusting.ReadAll(t.Context(), verity.ReadAllOptions{}); !errors.Is(err, verity.ErrUnavailable) {
		t.Fatalf("ReadAll trusting no certificate: %v, want Unavailable", err)
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "verity test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestRequestOverTheServersSizeLimitIsInvalid: gRPC refuses a request over the server's
// message size before the service sees it; the client reports it as the contract says.
func TestRequestOverTheServersSizeLimitIsInvalid(t *testing.T) {
	e := openEngine(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(4 << 10))
	grpcapi.New(&adminAccess{store: e}, grpcapi.Options{}).Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done; e.Close() })
	c, err := client.Dial(lis.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Append(t.Context(), "order-1", verity.Any(), verity.EventData{Type: "Blob", ContentType: verity.ContentTypeBinary, Data: make([]byte, 8<<10)})
	if !errors.Is(err, verity.ErrInvalid) || !strings.Contains(err.Error(), "larger than the server accepts") {
		t.Fatalf("an append over the server's message size: %v, want Invalid", err)
	}
	if _, err := c.Append(t.Context(), "order-1", verity.Any(), verity.EventData{Type: "Small", Data: []byte(`{}`)}); err != nil {
		t.Fatalf("a small append after the refused one: %v", err)
	}
}
