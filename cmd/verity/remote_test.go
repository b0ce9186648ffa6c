package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/server"
)

// TestMain checks that no test leaves a goroutine behind (a tail's subscription, a client's
// connection, a server's listener), and keeps the caller's VERITY_* settings out of the
// tests, which set them where they need them.
func TestMain(m *testing.M) {
	for _, name := range []string{envServer, envPassword, envToken} {
		os.Unsetenv(name)
	}
	goleak.VerifyTestMain(m)
}

// startServer runs a Verity server on a fresh loopback port until the end of the test and
// returns its address. A zero cfg.Data gets a temporary directory; cfg.Listen is always
// 127.0.0.1:0.
func startServer(t testing.TB, cfg server.Config) string {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Listen = "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("server.Shutdown: %v", err)
		}
	})
	return srv.Addr().String()
}

// startDevServer is startServer in the mode of 'verity dev': plaintext, no authentication.
func startDevServer(t testing.TB) string {
	t.Helper()
	return startServer(t, server.Config{Insecure: true})
}

func TestRemoteAppendThenReadBack(t *testing.T) {
	addr := startDevServer(t)
	for _, url := range []string{"http://" + addr, addr} {
		t.Run(url, func(t *testing.T) {
			stream := "order-" + strings.ReplaceAll(strings.ReplaceAll(url, ":", ""), "/", "")
			out := mustRun(t, runAppend, "--server", url, stream, `{"total": 42}`, "--type", "OrderPlaced", "--expected", "no-stream")
			if !strings.HasPrefix(out, "appended 1 event to "+stream+": revision 0, position ") {
				t.Errorf("append printed %q", out)
			}
			var stdout, stderr bytes.Buffer
			err := appendCommand(t.Context(), []string{"--server", url, "--batch", "--expected", "0", "--json", stream},
				strings.NewReader(`{"type":"OrderShipped","data":{"carrier":"ups"}}`+"\n"+`{"type":"OrderPaid","data":{}}`+"\n"), &stdout, &stderr)
			if err != nil {
				t.Fatalf("append --batch: %v (stderr %q)", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), `"events":2,"revision":2,`) {
				t.Errorf("append --batch --json printed %q, want 2 events up to revision 2", stdout.String())
			}

			out = mustRun(t, runRead, "--server", url, stream)
			got := lines(out)
			want := []string{
				stream + "@0 OrderPlaced",
				stream + "@1 OrderShipped",
				stream + "@2 OrderPaid",
			}
			if len(got) != len(want) {
				t.Fatalf("read printed %q, want %d events", out, len(want))
			}
			for i, l := range got {
				if f := strings.Fields(l); len(f) < 5 || strings.Join(f[1:3], " ") != want[i] {
					t.Errorf("line %d is %q, want %q", i, l, want[i])
				}
			}
			if !strings.HasSuffix(got[0], ` {"total":42}`) {
				t.Errorf("first line %q does not end with the compacted data", got[0])
			}
		})
	}
}

func TestRemoteCommandsBehaveAsLocalOnes(t *testing.T) {
	// The same commands against a data directory and a server print the same events: the
	// server's store is the same contract.
	addr := startDevServer(t)
	dir := t.TempDir()
	appendBoth := func(args ...string) {
		t.Helper()
		mustRun(t, runAppend, append([]string{"--data", dir}, args...)...)
		mustRun(t, runAppend, append([]string{"--server", "http://" + addr}, args...)...)
	}
	appendBoth("order-1", `{"total":42}`, "--type", "OrderPlaced")
	appendBoth("customer-1", `{"name":"ann"}`, "--type", "CustomerRegistered")
	appendBoth("order-1", `{}`, "--type", "OrderShipped", "--metadata", `{"user":"ann"}`)
	appendBoth("order-2", "plain text", "--type", "Note", "--content-type", "text/plain")

	for _, args := range [][]string{
		{"order-1"},
		{"--backwards", "--limit", "2"},
		{"--category", "order", "--exclude-system"},
		{"--type-prefix", "Order", "--from", "2"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			local := mustRun(t, runRead, append([]string{"--data", dir}, args...)...)
			remote := mustRun(t, runRead, append([]string{"--server", "http://" + addr}, args...)...)
			if len(lines(local)) == 0 {
				t.Fatal("the local read printed nothing")
			}
			// Times differ; every other field must not.
			if l, r := withoutTimes(local), withoutTimes(remote); !reflect.DeepEqual(l, r) {
				t.Errorf("local read printed\n%s\nremote read printed\n%s", strings.Join(l, "\n"), strings.Join(r, "\n"))
			}
		})
	}

	// A conflict over the network is the same error as at home.
	_, _, lerr := runCmd(t, runAppend, "--data", dir, "order-1", "{}", "--type", "T", "--expected", "0")
	_, _, rerr := runCmd(t, runAppend, "--server", "http://"+addr, "order-1", "{}", "--type", "T", "--expected", "0")
	if !errors.Is(lerr, verity.ErrConflict) || !errors.Is(rerr, verity.ErrConflict) {
		t.Fatalf("appends with a wrong --expected returned %v (local) and %v (remote), want conflicts", lerr, rerr)
	}
	if lerr.Error() != rerr.Error() {
		t.Errorf("the conflict reads %q locally and %q over the network", lerr, rerr)
	}
	// So is reading a stream that does not exist.
	_, _, rerr = runCmd(t, runRead, "--server", "http://"+addr, "nothing-here")
	if !errors.Is(rerr, verity.ErrNotFound) {
		t.Errorf("reading a missing stream returned %v, want not found", rerr)
	}
}

// withoutTimes drops the TIME field of read's lines.
func withoutTimes(out string) []string {
	var s []string
	for _, l := range lines(out) {
		f := strings.SplitN(l, " ", 5)
		if len(f) == 5 {
			f = append(f[:3], f[4])
		}
		s = append(s, strings.Join(f, " "))
	}
	return s
}

func TestRemoteTailPrintsEventsAppendedAfterItStarted(t *testing.T) {
	addr := startDevServer(t)
	url := "http://" + addr
	mustRun(t, runAppend, "--server", url, "order-1", `{"before":true}`, "--type", "OrderPlaced")

	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	stop := startTail(t, func(ctx context.Context) error {
		return runTail(ctx, []string{"--server", url, "--category", "order"}, stdout, stderr)
	})
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })

	mustRun(t, runAppend, "--server", url, "customer-1", `{}`, "--type", "CustomerRegistered")
	mustRun(t, runAppend, "--server", url, "order-2", `{"total":7}`, "--type", "OrderPlaced")
	out := stdout.waitFor(t, "the live event", func(s string) bool { return len(lines(s)) >= 1 })
	if err := stop(); err != nil {
		t.Fatalf("an interrupted tail returned %v, want nil", err)
	}
	// Tail started at the end, so order-1's event is not printed; the filter leaves out
	// customer-1's, which came before order-2's.
	if want := []string{"3 order-2@0 OrderPlaced"}; !reflect.DeepEqual(summary(out), want) {
		t.Errorf("tail printed %q, want %q", summary(out), want)
	}
}

func TestRemoteTailEndsWhenTheServerGoesAway(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{Data: t.TempDir(), Listen: "127.0.0.1:0", Insecure: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	url := "http://" + srv.Addr().String()
	stderr := newSyncBuffer()
	done := make(chan error, 1)
	go func() { done <- runTail(t.Context(), []string{"--server", url}, io.Discard, stderr) }()
	stderr.waitFor(t, "caught up", func(s string) bool { return strings.Contains(s, "caught up") })
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("tail of a server that shut down returned nil, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail still runs 10s after its server shut down")
	}
}

func TestRemoteUnreachableServerIsExplained(t *testing.T) {
	// A port that was just free: nothing listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr

	tests := []struct {
		name string
		cmd  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
	}{
		{"append", runAppend, []string{"s-1", "{}", "--type", "T"}},
		{"read", runRead, []string{"s-1"}},
		{"tail", runTail, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, tt.cmd, append([]string{"--server", url}, tt.args...)...)
			if !errors.Is(err, verity.ErrUnavailable) {
				t.Fatalf("got %v, want an Unavailable error", err)
			}
			t.Log(err)
			for _, want := range []string{url, "verity dev", "connection refused"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if code := exitCode(err, io.Discard); code != exitFailure {
				t.Errorf("exit code %d, want %d", code, exitFailure)
			}
		})
	}
}

func TestRemoteTLSServerWithAuthentication(t *testing.T) {
	certFile, keyFile := selfSignedCert(t)
	const password = "correct horse battery"
	addr := startServer(t, server.Config{TLSCert: certFile, TLSKey: keyFile, AdminPassword: password})
	url := "https://" + addr
	tlsArgs := []string{"--server", url, "--ca", certFile}

	t.Run("the right password from the environment lets the user in", func(t *testing.T) {
		t.Setenv(envPassword, password)
		mustRun(t, runAppend, append(tlsArgs, "--user", "admin", "order-1", `{"total":1}`, "--type", "OrderPlaced")...)
		out := mustRun(t, runRead, append(tlsArgs, "--user", "admin", "order-1")...)
		if got := lines(out); len(got) != 1 || !strings.Contains(got[0], " order-1@0 OrderPlaced ") {
			t.Errorf("read printed %q, want order-1@0 OrderPlaced", got)
		}
	})
	t.Run("the right password as a flag lets the user in", func(t *testing.T) {
		t.Setenv(envPassword, "not this one") // the flag wins
		out := mustRun(t, runRead, append(tlsArgs, "--user", "admin", "--password", password, "order-1")...)
		if len(lines(out)) != 1 {
			t.Errorf("read printed %q, want one event", out)
		}
	})
	t.Run("the server comes from VERITY_SERVER", func(t *testing.T) {
		t.Setenv(envServer, url)
		t.Setenv(envPassword, password)
		out := mustRun(t, runRead, "--ca", certFile, "--user", "admin", "order-1")
		if len(lines(out)) != 1 {
			t.Errorf("read printed %q, want one event", out)
		}
	})

	refusals := []struct {
		name     string
		args     []string
		password string // VERITY_PASSWORD
		want     []string
	}{
		{"a wrong password is refused", []string{"--user", "admin"}, "wrong", []string{"wrong user name or password", "--user admin", envPassword}},
		{"an unknown user is refused", []string{"--user", "mallory", "--password", password}, "", []string{"wrong user name or password", "--user mallory"}},
		{"no credentials are refused", nil, "", []string{"--user", envPassword, envToken}},
		{"a wrong token is refused", []string{"--token", "nope"}, "", []string{"token", envToken}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envPassword, tt.password)
			for _, c := range []struct {
				name string
				cmd  func(context.Context, []string, io.Writer, io.Writer) error
				args []string
			}{
				{"append", runAppend, []string{"order-1", "{}", "--type", "Sneaky"}},
				{"read", runRead, []string{"order-1"}},
				{"tail", runTail, nil},
			} {
				out, _, err := runCmd(t, c.cmd, append(append(append([]string{}, tlsArgs...), tt.args...), c.args...)...)
				if !errors.Is(err, verity.ErrUnauthenticated) {
					t.Fatalf("%s returned %v, want Unauthenticated", c.name, err)
				}
				t.Logf("%s: %v", c.name, err)
				if out != "" {
					t.Errorf("%s printed %q", c.name, out)
				}
				for _, want := range append([]string{url}, tt.want...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %q does not mention %q", c.name, err, want)
					}
				}
			}
		})
	}
	t.Run("a refused append wrote nothing", func(t *testing.T) {
		t.Setenv(envPassword, password)
		out := mustRun(t, runRead, append(tlsArgs, "--user", "admin", "--type", "Sneaky")...)
		if out != "" {
			t.Errorf("the log holds events of refused appends: %q", out)
		}
	})

	t.Run("an untrusted certificate asks for --ca", func(t *testing.T) {
		t.Setenv(envPassword, password)
		_, _, err := runCmd(t, runRead, "--server", url, "--user", "admin", "order-1")
		t.Log(err)
		if !errors.Is(err, verity.ErrUnavailable) || !strings.Contains(err.Error(), "--ca") || !strings.Contains(err.Error(), url) {
			t.Errorf("got %v, want an Unavailable error naming %s and --ca", err, url)
		}
	})
	t.Run("plaintext to a TLS server suggests https", func(t *testing.T) {
		_, _, err := runCmd(t, runRead, "--server", "http://"+addr, "order-1")
		t.Log(err)
		if !errors.Is(err, verity.ErrUnavailable) || !strings.Contains(err.Error(), "https://"+addr) {
			t.Errorf("got %v, want an Unavailable error suggesting https://%s", err, addr)
		}
	})
}

func TestRemoteTLSToAPlaintextServerSuggestsHTTP(t *testing.T) {
	certFile, _ := selfSignedCert(t)
	addr := startDevServer(t)
	_, _, err := runCmd(t, runRead, "--server", "https://"+addr, "--ca", certFile, "order-1")
	t.Log(err)
	if !errors.Is(err, verity.ErrUnavailable) || !strings.Contains(err.Error(), "http://"+addr) {
		t.Errorf("got %v, want an Unavailable error suggesting http://%s", err, addr)
	}
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files and
// returns their paths. The certificate is its own CA, so it serves as --ca too.
func selfSignedCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "verity test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestRemoteRejectsBadCommandLines(t *testing.T) {
	// Usage errors are found before anything is dialed or opened.
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"--server with --data", nil, []string{"--server", "http://127.0.0.1:2113", "--data", "d"}, "not both"},
		{"a scheme that is not http or https", nil, []string{"--server", "kurrentdb://127.0.0.1:2113"}, `unknown scheme "kurrentdb"`},
		{"a host without a port", nil, []string{"--server", "127.0.0.1"}, "HOST:PORT"},
		{"a URL with a path", nil, []string{"--server", "http://127.0.0.1:2113/streams"}, "only a scheme"},
		{"credentials in the URL", nil, []string{"--server", "http://admin:secret@127.0.0.1:2113"}, "--user"},
		{"--ca with a plaintext server", nil, []string{"--server", "http://127.0.0.1:2113", "--ca", notPEM}, "https://127.0.0.1:2113"},
		{"a --ca that holds no certificate", nil, []string{"--server", "https://127.0.0.1:2113", "--ca", notPEM}, "no PEM certificate"},
		{"a --ca that does not exist", nil, []string{"--server", "https://127.0.0.1:2113", "--ca", notPEM + ".missing"}, "--ca"},
		{"--user without a password", nil, []string{"--server", "127.0.0.1:2113", "--user", "admin"}, envPassword},
		{"--password without --user", nil, []string{"--server", "127.0.0.1:2113", "--password", "x"}, "--password needs --user"},
		{"--user with --token", map[string]string{envPassword: "x"}, []string{"--server", "127.0.0.1:2113", "--user", "admin", "--token", "t"}, "not both"},
		{"a user name with a colon", map[string]string{envPassword: "x"}, []string{"--server", "127.0.0.1:2113", "--user", "a:b"}, "':'"},
		{"credentials without a server", nil, []string{"--user", "admin"}, "--user is for a server"},
		{"--ca without a server", nil, []string{"--ca", notPEM}, "--ca is for a server"},
	}
	commands := []struct {
		name string
		cmd  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
	}{
		{"append", runAppend, []string{"s-1", "{}", "--type", "T"}},
		{"read", runRead, []string{"s-1"}},
		{"tail", runTail, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			for _, c := range commands {
				_, _, err := runCmd(t, c.cmd, append(append([]string{}, tt.args...), c.args...)...)
				wantUsageError(t, err)
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: error %q does not mention %q", c.name, err, tt.want)
				}
			}
		})
	}
}

func TestDataFlagWinsOverVerityServer(t *testing.T) {
	// VERITY_SERVER names a server nobody listens on; --data must not go there.
	t.Setenv(envServer, "http://127.0.0.1:1")
	dir := t.TempDir()
	mustRun(t, runAppend, "--data", dir, "s-1", "{}", "--type", "T")
	if events := readStreamEvents(t, dir, "s-1"); len(events) != 1 {
		t.Fatalf("%d events in the data directory, want 1", len(events))
	}
}

func TestParseServerURL(t *testing.T) {
	tests := []struct {
		in     string
		target string
		secure bool
	}{
		{"http://127.0.0.1:2113", "http://127.0.0.1:2113", false},
		{"http://127.0.0.1:2113/", "http://127.0.0.1:2113", false},
		{"127.0.0.1:2113", "http://127.0.0.1:2113", false},
		{"localhost:2113", "http://localhost:2113", false},
		{"https://verity.example.com:2113", "https://verity.example.com:2113", true},
		{"https://verity.example.com", "https://verity.example.com:443", true},
		{"http://verity.example.com", "http://verity.example.com:80", false},
		{"http://[::1]:2113", "http://[::1]:2113", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := parseServerURL(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.target != tt.target || r.secure != tt.secure || r.url != tt.in {
				t.Errorf("got target %q secure %v url %q, want %q %v %q", r.target, r.secure, r.url, tt.target, tt.secure, tt.in)
			}
		})
	}
	for _, bad := range []string{"", ":2113", "http://", "https://:443", "ftp://h:1", "h:1/x", "http://h:1?x=1", "http://h:1#f"} {
		if _, err := parseServerURL(bad); err == nil {
			t.Errorf("parseServerURL(%q) accepted it", bad)
		}
	}
}

// FuzzParseServerURL checks that any --server value is either refused or yields a target
// client.Dial takes: a scheme, then a host and a numeric port.
func FuzzParseServerURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:2113", "https://h", "h:1", "http://[::1]:2113/", "ftp://h:1", "http://a:b@h:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseServerURL(s)
		if err != nil {
			return
		}
		rest, ok := strings.CutPrefix(r.target, "http://")
		if r.secure {
			rest, ok = strings.CutPrefix(r.target, "https://")
		}
		if !ok {
			t.Fatalf("%q: target %q has the wrong scheme (secure %v)", s, r.target, r.secure)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || rest != r.host {
			t.Fatalf("%q: target %q, host %q: not HOST:PORT", s, r.target, r.host)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			t.Fatalf("%q: port %q is not a number", s, port)
		}
	})
}

func TestRemoteAnswerFromSomethingElseIsExplained(t *testing.T) {
	// An HTTP/2 server that is not Verity: gRPC calls get a 404 with no gRPC status.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: http.NotFoundHandler(), Protocols: &protocols}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	url := "http://" + ln.Addr().String()
	_, _, err = runCmd(t, runRead, "--server", url, "order-1")
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "Verity server") {
		t.Errorf("got %v, want an error asking whether %s is a Verity server", err, url)
	}
}
