package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/server"
)

// envChild makes the test binary run main instead of the tests, so that a test can run
// shop-service as a child process (and signal it) without building it.
const envChild = "SHOP_SERVICE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Args = append([]string{os.Args[0]}, strings.Fields(os.Getenv(envChild+"_ARGS"))...)
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

const waitLimit = 30 * time.Second

// startServer runs an insecure server on a loopback port, with a short registry TTL.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.New(server.Config{
		Insecure: true, Data: t.TempDir(), Listen: "127.0.0.1:0", RegistryTTL: time.Second,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

// addrLine receives what run prints on stdout and hands over the address it announces.
type addrLine struct {
	mu   sync.Mutex
	buf  strings.Builder
	addr chan string
}

func newAddrLine() *addrLine { return &addrLine{addr: make(chan string, 1)} }

func (w *addrLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if s := w.buf.String(); strings.HasSuffix(s, "\n") {
		if _, addr, ok := strings.Cut(strings.TrimSpace(s), " listening on "); ok {
			select {
			case w.addr <- addr:
			default:
			}
		}
	}
	return len(p), nil
}

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v", what, waitLimit)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func instances(t *testing.T, srv *server.Server, service string) []registry.Instance {
	t.Helper()
	ins, err := srv.Registry().Lookup(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func TestEachServiceRegistersInTheServersRegistryAndDeregistersWhenStopped(t *testing.T) {
	srv := startServer(t)
	url := "http://" + srv.Addr().String()
	for _, name := range []string{"customers", "inventory", "payments", "orders"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			out := newAddrLine()
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"--service", name, "--server", url}, out, io.Discard, func(string) (string, bool) { return "", false })
			}()
			var addr string
			select {
			case addr = <-out.addr:
			case err := <-done:
				t.Fatalf("run ended before serving: %v", err)
			case <-time.After(waitLimit):
				t.Fatal("no address printed")
			}
			ins := instances(t, srv, name)
			if len(ins) != 1 || ins[0].Address != addr {
				t.Fatalf("registry has %+v, want one %s instance at %s", ins, name, addr)
			}
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /healthz: %d", resp.StatusCode)
			}

			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run after cancel: %v", err)
			}
			if ins := instances(t, srv, name); len(ins) != 0 {
				t.Errorf("after a graceful stop the registry still has %+v", ins)
			}
		})
	}
}

func TestWrongFlagsAreRefusedByName(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a missing service is refused", nil, "--service is required"},
		{"an unknown service is refused", []string{"--service", "shipping"}, `"shipping": no such service`},
		{"a password without a user is refused", []string{"--service", "orders", "--password", "x"}, "--password needs --user"},
		{"a user without a password is refused", []string{"--service", "orders", "--user", "ann"}, "needs a password"},
		{"a user and a token together are refused", []string{"--service", "orders", "--user", "ann", "--password", "x", "--token", "t"}, "not both"},
		{"a CA for a plaintext server is refused", []string{"--service", "orders", "--ca", "ca.pem"}, "plaintext"},
		{"an unknown scheme is refused", []string{"--service", "orders", "--server", "ftp://x:1"}, `"ftp://x:1"`},
		{"a stray argument is refused", []string{"--service", "orders", "extra"}, `"extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), tc.args, io.Discard, io.Discard, noEnv)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestTheServerAndCredentialsComeFromTheEnvironment(t *testing.T) {
	env := map[string]string{envServer: "127.0.0.1:9", envPassword: "pw"}
	o, err := parse([]string{"--service", "orders", "--user", "ann"}, io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if o.server != "http://127.0.0.1:9" || o.storeOpts.Username != "ann" || o.storeOpts.Password != "pw" || o.regOpts.Password != "pw" {
		t.Errorf("parsed %+v", o)
	}
}

func TestTheProcessStopsGracefullyOnSIGTERM(t *testing.T) {
	srv := startServer(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envChild+"_ARGS=--service payments --server http://"+srv.Addr().String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's address: %v", err)
	}
	_, addr, ok := strings.Cut(strings.TrimSpace(line), " listening on ")
	if !ok {
		t.Fatalf("child printed %q, want \"payments listening on ADDR\"", line)
	}
	if ins := instances(t, srv, "payments"); len(ins) != 1 || ins[0].Address != addr {
		t.Fatalf("registry has %+v, want the child at %s", ins, addr)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout) // until the child exits and the pipe closes
	waited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v, want exit status 0", err)
	}
	if ins := instances(t, srv, "payments"); len(ins) != 0 {
		t.Errorf("after SIGTERM the registry still has %+v", ins)
	}
}

func TestAnUnreachableServerIsNamedWithWhatToDo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = run(t.Context(), []string{"--service", "inventory", "--server", addr}, io.Discard, io.Discard, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "cannot reach the server at http://"+addr) || !strings.Contains(err.Error(), "verity dev") {
		t.Errorf("run against nothing = %v, want it to name the server and how to start one", err)
	}
}
