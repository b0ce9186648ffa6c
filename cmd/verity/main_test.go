package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

func TestRunMapsOutcomesToExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{"no command is a usage error", nil, exitUsage, "", "Commands:"},
		{"help lists every command", []string{"help"}, exitOK, "scavenge", ""},
		{"--help lists every command", []string{"--help"}, exitOK, "bench", ""},
		{"an unknown command is a usage error", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"a command's --help explains its flags", []string{"read", "--help"}, exitOK, "--stream-regexp RE", ""},
		{"help COMMAND is COMMAND --help", []string{"help", "append"}, exitOK, "--expected COND", ""},
		{"an unknown flag is a usage error", []string{"append", "--bogus", "s"}, exitUsage, "", "verity: append: flag provided but not defined"},
		{"a bad --expected is a usage error", []string{"append", "--data", missing, "--expected", "soon", "--type", "T", "s", "{}"}, exitUsage, "", "want any, no-stream, exists or a revision number"},
		{"a missing data directory is a runtime error", []string{"read", "--data", missing}, exitFailure, "", "verity: data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.code == exitUsage && tt.wantStdout == "" && stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout: %q", stdout.String())
			}
		})
	}
}

func TestEveryCommandExplainsItsFlags(t *testing.T) {
	for _, c := range commands {
		if c.name == "bench" {
			continue // its own helper's tests cover it
		}
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), []string{c.name, "--help"}, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit code %d, stderr %q", code, stderr.String())
			}
			want := []string{"Usage:", "verity " + c.name, "Examples:"}
			if c.name != "demo" { // demo talks to a gateway only
				want = append(want, "--data DIR")
			}
			for _, want := range want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("help does not mention %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}

func TestParseAcceptsFlagsAnywhere(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		wantX   string
		wantB   bool
	}{
		{"flags first", []string{"-x", "1", "--b", "s", "d"}, []string{"s", "d"}, "1", true},
		{"flags after arguments", []string{"s", "d", "--x", "1"}, []string{"s", "d"}, "1", false},
		{"flags between arguments", []string{"s", "--b", "d"}, []string{"s", "d"}, "", true},
		{"a dash is an argument", []string{"s", "-", "--b"}, []string{"s", "-"}, "", true},
		{"double dash ends the flags", []string{"--b", "--", "s", "--x"}, []string{"s", "--x"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("t", "t", "t")
			x := fs.String("x", "", "")
			b := fs.Bool("b", false, "")
			pos, err := fs.parse(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) || *x != tt.wantX || *b != tt.wantB {
				t.Errorf("got %q x=%q b=%v, want %q x=%q b=%v", pos, *x, *b, tt.wantPos, tt.wantX, tt.wantB)
			}
		})
	}
}

// runCmd runs a subcommand and returns what it printed and returned.
func runCmd(t testing.TB, cmd func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = cmd(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustRun runs a subcommand that must succeed and returns its stdout.
func mustRun(t testing.TB, cmd func(context.Context, []string, io.Writer, io.Writer) error, args ...string) string {
	t.Helper()
	stdout, stderr, err := runCmd(t, cmd, args...)
	if err != nil {
		t.Fatalf("%q: %v (stderr %q)", args, err, stderr)
	}
	return stdout
}

// wantUsageError fails unless err is a usage error, which main maps to exit code 2.
func wantUsageError(t testing.TB, err error) {
	t.Helper()
	var u *usageError
	if !errors.As(err, &u) {
		t.Fatalf("got error %v (%T), want a usage error", err, err)
	}
	if code := exitCode(err, io.Discard); code != exitUsage {
		t.Fatalf("exit code %d for a usage error, want %d", code, exitUsage)
	}
}

// openEngine opens the engine on dir for a test and closes it at the end of the test;
// close it earlier to let a command open dir.
func openTestEngine(t testing.TB, dir string) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{Dir: dir})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// withEngine runs f on an engine opened on dir and closes it, so that commands can then
// open dir.
func withEngine(t testing.TB, dir string, f func(e *engine.Engine)) {
	t.Helper()
	e := openTestEngine(t, dir)
	f(e)
	if err := e.Close(); err != nil {
		t.Fatalf("close engine: %v", err)
	}
}

// mustAppend appends JSON events of the given types to stream.
func mustAppend(t testing.TB, st verity.Store, stream string, events ...verity.EventData) verity.AppendResult {
	t.Helper()
	res, err := st.Append(t.Context(), stream, verity.Any(), events...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func jsonEvent(typ, data string) verity.EventData {
	return verity.EventData{Type: typ, Data: []byte(data)}
}

// readStreamEvents returns every event of stream in dir.
func readStreamEvents(t testing.TB, dir, stream string) []verity.RecordedEvent {
	t.Helper()
	var events []verity.RecordedEvent
	withEngine(t, dir, func(e *engine.Engine) {
		var err error
		events, err = e.ReadStream(t.Context(), stream, verity.ReadStreamOptions{})
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
	})
	return events
}

// syncBuffer is a bytes.Buffer that a command writes to from one goroutine while the test
// waits on its content from another.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer's content satisfies cond, failing the test after a while.
func (b *syncBuffer) waitFor(t testing.TB, what string, cond func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		s, changed := b.buf.String(), b.changed
		b.mu.Unlock()
		if cond(s) {
			return s
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; got:\n%s", what, s)
		}
	}
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
