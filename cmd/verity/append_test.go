package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// appendWithStdin runs `verity append` with stdin.
func appendWithStdin(t testing.TB, stdin string, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = appendCommand(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

func TestAppendWritesOneEventFromTheArgument(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, runAppend, "--data", dir, "order-1", `{"total": 42}`, "--type", "OrderPlaced")
	if want := "appended 1 event to order-1: revision 0, position 1\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	events := readStreamEvents(t, dir, "order-1")
	if len(events) != 1 {
		t.Fatalf("%d events in order-1, want 1", len(events))
	}
	e := events[0]
	if e.Type != "OrderPlaced" || string(e.Data) != `{"total": 42}` || e.Revision != 0 || e.Position != 1 {
		t.Errorf("stored %s@%d pos %d type %q data %q", e.Stream, e.Revision, e.Position, e.Type, e.Data)
	}
	if e.ID == uuid.Nil {
		t.Error("the event got no id")
	}
}

func TestAppendReadsDataFromStdin(t *testing.T) {
	for _, args := range [][]string{{"s-1"}, {"s-1", "-"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := t.TempDir()
			if _, err := appendWithStdin(t, "{\"n\":1}\n", append([]string{"--data", dir, "--type", "T"}, args...)...); err != nil {
				t.Fatal(err)
			}
			events := readStreamEvents(t, dir, "s-1")
			if len(events) != 1 || string(events[0].Data) != `{"n":1}` {
				t.Fatalf("stored %+v, want one event with data {\"n\":1} (trailing newline trimmed)", events)
			}
		})
	}
}

func TestAppendStoresIdMetadataAndContentType(t *testing.T) {
	dir := t.TempDir()
	id := uuid.New()
	mustRun(t, runAppend, "--data", dir, "--type", "Note", "--id", id.String(),
		"--metadata", `{"user":"ann"}`, "--content-type", "text/plain", "note-1", "hello")
	e := readStreamEvents(t, dir, "note-1")[0]
	if e.ID != id || string(e.Metadata) != `{"user":"ann"}` || e.ContentType != "text/plain" || string(e.Data) != "hello" {
		t.Errorf("stored id %s metadata %q content type %q data %q", e.ID, e.Metadata, e.ContentType, e.Data)
	}
}

func TestAppendRetriedWithTheSameIdWritesNothing(t *testing.T) {
	dir := t.TempDir()
	id := uuid.NewString()
	args := []string{"--data", dir, "--type", "T", "--id", id, "--expected", "no-stream", "--json", "s-1", "{}"}
	first := mustRun(t, runAppend, args...)
	second := mustRun(t, runAppend, args...)
	if first != second {
		t.Errorf("retry printed %q, first append %q", second, first)
	}
	if want := `{"stream":"s-1","events":1,"revision":0,"position":1}` + "\n"; first != want {
		t.Errorf("--json printed %q, want %q", first, want)
	}
	if n := len(readStreamEvents(t, dir, "s-1")); n != 1 {
		t.Errorf("%d events after a retry, want 1", n)
	}
}

func TestAppendHonoursExpected(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, runAppend, "--data", dir, "--type", "T", "--expected", "no-stream", "s-1", "{}")
	mustRun(t, runAppend, "--data", dir, "--type", "T", "--expected", "0", "s-1", "{}")
	mustRun(t, runAppend, "--data", dir, "--type", "T", "--expected", "exists", "s-1", "{}")

	for _, expected := range []string{"no-stream", "0", "7"} {
		t.Run("a wrong --expected "+expected+" is a conflict", func(t *testing.T) {
			_, _, err := runCmd(t, runAppend, "--data", dir, "--type", "T", "--expected", expected, "s-1", "{}")
			if !errors.Is(err, verity.ErrConflict) {
				t.Fatalf("got %v, want a conflict", err)
			}
			if code := exitCode(err, &bytes.Buffer{}); code != exitFailure {
				t.Errorf("exit code %d, want %d", code, exitFailure)
			}
		})
	}
	t.Run("--expected exists on a new stream is a conflict", func(t *testing.T) {
		_, _, err := runCmd(t, runAppend, "--data", dir, "--type", "T", "--expected", "exists", "s-2", "{}")
		if !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("got %v, want a conflict", err)
		}
	})
	if n := len(readStreamEvents(t, dir, "s-1")); n != 3 {
		t.Errorf("%d events in s-1, want 3", n)
	}
}

func TestAppendRejectsMalformedJSONData(t *testing.T) {
	dir := t.TempDir()
	_, _, err := runCmd(t, runAppend, "--data", dir, "--type", "T", "s-1", "{not json")
	if !errors.Is(err, verity.ErrInvalid) {
		t.Fatalf("got %v, want invalid", err)
	}
}

func TestAppendBatchAppendsAllLinesAtomically(t *testing.T) {
	dir := t.TempDir()
	id := uuid.New()
	stdin := `{"type":"A","data":{"n":1},"id":"` + id.String() + `"}

{"data":{"n":2},"metadata":{"user":"bob"}}
{"type":"C","contentType":"application/octet-stream","data":"AAEC"}
`
	out, err := appendWithStdin(t, stdin, "--data", dir, "--batch", "--type", "B", "--metadata", `{"user":"ann"}`, "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "appended 3 events to batch-1: revision 2, position 3\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	events := readStreamEvents(t, dir, "batch-1")
	if len(events) != 3 {
		t.Fatalf("%d events, want 3", len(events))
	}
	checks := []struct {
		typ, data, metadata string
	}{
		{"A", `{"n":1}`, `{"user":"ann"}`},
		{"B", `{"n":2}`, `{"user":"bob"}`},
		{"C", "\x00\x01\x02", `{"user":"ann"}`},
	}
	for i, c := range checks {
		e := events[i]
		if e.Type != c.typ || string(e.Data) != c.data || string(e.Metadata) != c.metadata {
			t.Errorf("event %d: type %q data %q metadata %q, want %q %q %q", i, e.Type, e.Data, e.Metadata, c.typ, c.data, c.metadata)
		}
	}
	if events[0].ID != id {
		t.Errorf("first event id %s, want %s", events[0].ID, id)
	}
}

func TestAppendBatchWithABadLineWritesNothing(t *testing.T) {
	tests := []struct {
		name, stdin string
	}{
		{"a line that is not JSON", "{\"type\":\"A\",\"data\":{}}\nnot json\n"},
		{"a line without a type", "{\"type\":\"A\",\"data\":{}}\n{\"data\":{}}\n"},
		{"a bad id", "{\"type\":\"A\",\"data\":{},\"id\":\"nope\"}\n"},
		{"binary data that is not base64", "{\"type\":\"A\",\"contentType\":\"application/octet-stream\",\"data\":\"!!\"}\n"},
		{"an event over the size limit", "{\"type\":\"A\",\"data\":{}}\n{\"type\":\"A\",\"data\":\"" + strings.Repeat("x", engine.DefaultMaxEventSize+1) + "\"}\n"},
		{"no events at all", "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, runAppend, "--data", dir, "--type", "T", "other-1", "{}")
			if _, err := appendWithStdin(t, tt.stdin, "--data", dir, "--batch", "batch-1"); err == nil {
				t.Fatal("the batch was accepted")
			}
			withEngine(t, dir, func(e *engine.Engine) {
				if _, err := e.ReadStream(t.Context(), "batch-1", verity.ReadStreamOptions{}); !errors.Is(err, verity.ErrNotFound) {
					t.Errorf("reading batch-1 after a refused batch: %v, want not found", err)
				}
			})
		})
	}
}

func TestAppendRejectsBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no stream", []string{"--type", "T"}},
		{"no type", []string{"s-1", "{}"}},
		{"a bad --expected", []string{"--type", "T", "--expected", "maybe", "s-1", "{}"}},
		{"a negative --expected", []string{"--type", "T", "--expected", "-1", "s-1", "{}"}},
		{"a bad --id", []string{"--type", "T", "--id", "42", "s-1", "{}"}},
		{"bad --metadata", []string{"--type", "T", "--metadata", "{", "s-1", "{}"}},
		{"too many arguments", []string{"--type", "T", "s-1", "{}", "{}"}},
		{"--id with --batch", []string{"--batch", "--id", uuid.NewString(), "s-1"}},
		{"DATA with --batch", []string{"--batch", "s-1", "{}"}},
		{"an unknown flag", []string{"--type", "T", "--colour", "s-1", "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := appendWithStdin(t, "", append([]string{"--data", dir}, tt.args...)...)
			wantUsageError(t, err)
			if _, err := os.Stat(dir); err == nil {
				t.Error("a usage error created the data directory")
			}
		})
	}
}

func TestReadJSONOutputAppendsUnchangedToAnotherStore(t *testing.T) {
	dir := t.TempDir()
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "src-1",
			verity.EventData{Type: "A", Data: []byte(`{"a":[1,2]}`), Metadata: []byte(`{"m":true}`)},
			verity.EventData{Type: "B", ContentType: verity.ContentTypeBinary, Data: []byte{0xff, 0, 7}})
	})
	jsonLines := mustRun(t, runRead, "--data", dir, "--json", "src-1")
	copyDir := t.TempDir()
	if _, err := appendWithStdin(t, jsonLines, "--data", copyDir, "--batch", "src-1"); err != nil {
		t.Fatal(err)
	}
	src, cp := readStreamEvents(t, dir, "src-1"), readStreamEvents(t, copyDir, "src-1")
	if len(cp) != len(src) {
		t.Fatalf("copied %d events, want %d", len(cp), len(src))
	}
	for i := range src {
		s, c := src[i], cp[i]
		if s.ID != c.ID || s.Type != c.Type || s.ContentType != c.ContentType ||
			!jsonEqualOrBytes(s.Data, c.Data) || !jsonEqualOrBytes(s.Metadata, c.Metadata) {
			t.Errorf("event %d: copied %+v, want %+v", i, c, s)
		}
	}
}

// jsonEqualOrBytes compares two JSON values by meaning, anything else byte for byte.
func jsonEqualOrBytes(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil {
		ja, _ := json.Marshal(x)
		jb, _ := json.Marshal(y)
		return bytes.Equal(ja, jb)
	}
	return bytes.Equal(a, b)
}
