package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/verity-dev/verity/client"
)

// Limits of the verity-server process's lifecycle.
const (
	// serverStartTimeout bounds how long a fresh `verity serve` may take to become ready.
	serverStartTimeout = 30 * time.Second
	// serverStopTimeout bounds how long it may take to exit after SIGTERM: its own drain
	// bound is 10s, so this leaves room for the flush and fsync after it.
	serverStopTimeout = 30 * time.Second
	// serverReadyPoll is how often /health/ready is asked while the server starts.
	serverReadyPoll = 20 * time.Millisecond
	// serverStartAttempts is how many ports are tried: the port is picked free, but another
	// process may take it before the server binds it.
	serverStartAttempts = 3
	// serverLogTail is how much of the server's log an error shows, in bytes.
	serverLogTail = 4 << 10
)

// serverStore is Verity served by a `verity serve --insecure` process of its own on a
// loopback port, driven through the Go client and the same verity.Store adapter as the
// embedded engine, so that the two differ by the network path alone. Close closes the
// client, stops the process with SIGTERM and waits for it to exit.
type serverStore struct {
	*verityStore
	proc *serverProcess
}

var _ system = (*serverStore)(nil)

// openServer starts `command... --insecure --listen 127.0.0.1:PORT --data dir/data` with
// its stderr in dir/server.log, waits until it is ready and dials it.
func openServer(ctx context.Context, command []string, dir string) (*serverStore, error) {
	p, err := startServer(ctx, command, dir)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(p.addr, client.Options{})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dial verity-server at %s: %w", p.addr, err), p.stop())
	}
	return &serverStore{verityStore: &verityStore{s: c}, proc: p}, nil
}

// Close closes the client first, so that the server sees its connection go before it is
// told to drain, then stops the server.
func (s *serverStore) Close() error {
	cerr := s.verityStore.Close()
	if cerr != nil {
		cerr = fmt.Errorf("close client: %w", cerr)
	}
	return errors.Join(cerr, s.proc.stop())
}

// serverProcess is a running `verity serve`.
type serverProcess struct {
	cmd     *exec.Cmd
	addr    string // host:port it listens on
	logPath string
	exited  chan struct{} // closed once Wait has returned; waitErr is then set
	waitErr error
}

// startServer starts the server in dir and returns once /health/ready answers 200.
func startServer(ctx context.Context, command []string, dir string) (*serverProcess, error) {
	if len(command) == 0 {
		return nil, errors.New("no command to start verity-server with")
	}
	var errs []error
	for attempt := range serverStartAttempts {
		p, err := startServerOnce(ctx, command, dir, attempt)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errPortTaken marks a start that failed because the port picked was taken meanwhile.
var errPortTaken = errors.New("port taken")

func startServerOnce(ctx context.Context, command []string, dir string, attempt int) (*serverProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, fmt.Sprintf("server-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("verity-server log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	args := append(append([]string(nil), command[1:]...),
		"--insecure", "--listen", addr, "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	cmd := exec.Command(command[0], args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = serverEnv()
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start verity-server (%s): %w", strings.Join(cmd.Args, " "), err)
	}
	p := &serverProcess{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		err = fmt.Errorf("verity-server (%s) did not become ready: %w%s", strings.Join(cmd.Args, " "), err, p.logTail())
		if serr := p.stop(); serr != nil && !errors.Is(serr, errExitedEarly) {
			err = errors.Join(err, serr)
		}
		if strings.Contains(p.logText(), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, err
	}
	return p, nil
}

// serverEnv is this process's environment without the variable that would make a verity
// binary take itself for the scale workload's child.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ChildEnv+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// waitReady polls /health/ready until it answers 200, the process exits, ctx ends or
// serverStartTimeout passes.
func (p *serverProcess) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, serverStartTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	url := "http://" + p.addr + "/health/ready"
	tick := time.NewTicker(serverReadyPoll)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("%w (%v)", errExitedEarly, p.waitErr)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready after %v; last: %v", serverStartTimeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// errExitedEarly is a server process that exited before it was asked to.
var errExitedEarly = errors.New("the process exited")

// stop sends SIGTERM and waits for the exit, killing the process if it has not exited
// within serverStopTimeout. A non-zero exit is an error showing the end of the log.
func (p *serverProcess) stop() error {
	select {
	case <-p.exited:
		// Exited by itself (or on the terminal's SIGINT along with us).
		if p.waitErr != nil {
			return fmt.Errorf("verity-server: %w: %v%s", errExitedEarly, p.waitErr, p.logTail())
		}
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("verity-server: SIGTERM: %w", err)
	}
	t := time.NewTimer(serverStopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("verity-server did not exit within %v of SIGTERM; killed%s", serverStopTimeout, p.logTail())
	}
	if p.waitErr != nil {
		return fmt.Errorf("verity-server exited with %v after SIGTERM%s", p.waitErr, p.logTail())
	}
	return nil
}

func (p *serverProcess) logText() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", p.logPath, err)
	}
	return string(b)
}

// logTail is the end of the server's log, for an error message.
func (p *serverProcess) logTail() string {
	b := []byte(p.logText())
	if len(b) > serverLogTail {
		b = b[len(b)-serverLogTail:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "\n" + p.logPath + " is empty"
	}
	return "\n--- " + p.logPath + " (end) ---\n" + strings.TrimRight(string(b), "\n")
}
