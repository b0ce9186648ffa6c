package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
)

// seedLog writes a small log to dir:
//
//	1 order-1@0 OrderPlaced, 2 order-1@1 OrderShipped, 3 customer-1@0 CustomerRegistered,
//	4 order-2@0 OrderPlaced, 5 $$order-1@0 $metadata
func seedLog(t testing.TB, dir string) {
	t.Helper()
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "order-1", jsonEvent("OrderPlaced", `{"total":42}`), jsonEvent("OrderShipped", `{}`))
		mustAppend(t, e, "customer-1", jsonEvent("CustomerRegistered", `{"name":"ann"}`))
		mustAppend(t, e, "order-2", jsonEvent("OrderPlaced", `{"total":7}`))
		meta := verity.StreamMetadata{Custom: map[string]json.RawMessage{"owner": json.RawMessage(`"sales"`)}}
		if _, err := e.SetStreamMetadata(t.Context(), "order-1", verity.Any(), meta); err != nil {
			t.Fatal(err)
		}
	})
}

// summary keeps the first three fields of each line: "POSITION STREAM@REVISION TYPE".
func summary(out string) []string {
	var s []string
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) < 3 {
			s = append(s, l)
			continue
		}
		s = append(s, strings.Join(f[:3], " "))
	}
	return s
}

func TestReadPrintsOneLinePerEvent(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	out := mustRun(t, runRead, "--data", dir, "order-1")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^1 order-1@0 OrderPlaced \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \{"total":42\}$`),
		regexp.MustCompile(`^2 order-1@1 OrderShipped \S+Z \{\}$`),
	}
	got := lines(out)
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("line %d is %q, want it to match %s", i+1, got[i], re)
		}
	}
}

func TestReadSelectsEvents(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	all := []string{"1 order-1@0 OrderPlaced", "2 order-1@1 OrderShipped", "3 customer-1@0 CustomerRegistered", "4 order-2@0 OrderPlaced", "5 $$order-1@0 $metadata"}
	pick := func(positions ...int) []string {
		var s []string
		for _, p := range positions {
			s = append(s, all[p-1])
		}
		return s
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"a stream forwards", []string{"order-1"}, pick(1, 2)},
		{"a stream backwards", []string{"--backwards", "order-1"}, pick(2, 1)},
		{"a stream from a revision", []string{"--from", "1", "order-1"}, pick(2)},
		{"a stream backwards from a revision", []string{"--backwards", "--from", "0", "order-1"}, pick(1)},
		{"a stream with a limit", []string{"--limit", "1", "order-1"}, pick(1)},
		{"a stream forwards from its end", []string{"--from", "end", "order-1"}, nil},
		{"the log when no stream is named", nil, pick(1, 2, 3, 4, 5)},
		{"the log when $all is named", []string{"$all"}, pick(1, 2, 3, 4, 5)},
		{"the log backwards with a limit", []string{"--backwards", "--limit", "2"}, pick(5, 4)},
		{"the log from a position", []string{"--from", "3"}, pick(3, 4, 5)},
		{"the log backwards from a position", []string{"--backwards", "--from", "2"}, pick(2, 1)},
		{"the log backwards from its end", []string{"--backwards", "--from", "end"}, pick(5, 4, 3, 2, 1)},
		{"the log without system events", []string{"--exclude-system"}, pick(1, 2, 3, 4)},
		{"a category", []string{"--category", "order"}, pick(1, 2, 4)},
		{"two categories", []string{"--category", "order,customer"}, pick(1, 2, 3, 4)},
		{"an event type", []string{"--type", "OrderPlaced"}, pick(1, 4)},
		{"repeated event types", []string{"--type", "OrderPlaced", "--type", "CustomerRegistered"}, pick(1, 3, 4)},
		{"comma-separated event types", []string{"--type", "OrderPlaced,CustomerRegistered"}, pick(1, 3, 4)},
		{"an event type prefix", []string{"--type-prefix", "Order"}, pick(1, 2, 4)},
		{"a stream prefix", []string{"--stream-prefix", "customer"}, pick(3)},
		{"a stream regexp", []string{"--stream-regexp", "^order-[12]$"}, pick(1, 2, 4)},
		{"an event type regexp", []string{"--type-regexp", "Shipped$"}, pick(2)},
		{"filters together", []string{"--category", "order", "--type", "OrderPlaced", "--backwards"}, pick(4, 1)},
		{"events since a past time", []string{"--since", "2000-01-01T00:00:00Z", "--exclude-system"}, pick(1, 2, 3, 4)},
		{"events since a future time", []string{"--since", "2200-01-01T00:00:00Z"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRun(t, runRead, append([]string{"--data", dir}, tt.args...)...)
			if got := summary(out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestReadJSONHasEveryField(t *testing.T) {
	dir := t.TempDir()
	var recorded []verity.RecordedEvent
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "doc-1",
			verity.EventData{Type: "Written", Data: []byte(`{"text": "<b>hi</b>"}`), Metadata: []byte(`{"user":"ann"}`)},
			verity.EventData{Type: "Blob", ContentType: verity.ContentTypeBinary, Data: []byte{0, 1, 2, 255}})
		var err error
		if recorded, err = e.ReadStream(t.Context(), "doc-1", verity.ReadStreamOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	out := mustRun(t, runRead, "--data", dir, "--json", "doc-1")
	got := lines(out)
	if len(got) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(got), out)
	}
	for i, l := range got {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", i+1, err, l)
		}
		r := recorded[i]
		if r.ContentType == "" {
			r.ContentType = verity.ContentTypeJSON
		}
		want := map[string]string{
			"position":    fmt.Sprint(r.Position),
			"stream":      `"doc-1"`,
			"revision":    fmt.Sprint(r.Revision),
			"id":          `"` + r.ID.String() + `"`,
			"type":        `"` + r.Type + `"`,
			"contentType": `"` + r.ContentType + `"`,
		}
		if i == 0 {
			want["data"] = `{"text":"<b>hi</b>"}`
			want["metadata"] = `{"user":"ann"}`
		} else {
			want["data"] = `"AAEC/w=="`
			want["metadata"] = `null`
		}
		for k, v := range want {
			if string(m[k]) != v {
				t.Errorf("line %d: %s is %s, want %s", i+1, k, m[k], v)
			}
		}
		var created time.Time
		if err := json.Unmarshal(m["created"], &created); err != nil || !created.Equal(r.Created) {
			t.Errorf("line %d: created is %s, want %s", i+1, m["created"], r.Created.Format(time.RFC3339Nano))
		}
	}
}

func TestReadPrintsJSONTextAndBinaryData(t *testing.T) {
	dir := t.TempDir()
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "doc-1",
			verity.EventData{Type: "Page", Data: []byte(`{ "html": "<b>hi</b>" }`)},
			verity.EventData{Type: "Note", ContentType: "text/plain", Data: []byte("two words")},
			verity.EventData{Type: "Blob", ContentType: verity.ContentTypeBinary, Data: []byte{0, 1, 2, 255}})
	})
	got := lines(mustRun(t, runRead, "--data", dir, "doc-1"))
	if len(got) != 3 || !strings.HasSuffix(got[0], ` {"html":"<b>hi</b>"}`) ||
		!strings.HasSuffix(got[1], ` "two words"`) || !strings.HasSuffix(got[2], " base64:AAEC/w==") {
		t.Errorf("got lines %q, want the JSON compact and unescaped, the text quoted and the binary data in base64", got)
	}
}

func TestReadPagesThroughLongStreamsAndLogs(t *testing.T) {
	const n = verity.DefaultReadLimit + 904 // more than one page
	dir := t.TempDir()
	withEngine(t, dir, func(e *engine.Engine) {
		events := make([]verity.EventData, n)
		for i := range events {
			events[i] = jsonEvent([]string{"Even", "Odd"}[i%2], fmt.Sprintf(`{"i":%d}`, i))
		}
		mustAppend(t, e, "long-1", events...)
	})
	tests := []struct {
		name      string
		args      []string
		count     int
		firstLast [2]string
	}{
		{"a stream forwards", []string{"long-1"}, n, [2]string{"1 long-1@0 Even", fmt.Sprintf("%d long-1@%d Odd", n, n-1)}},
		{"a stream backwards with a limit over a page", []string{"--backwards", "--limit", "4100", "long-1"}, 4100, [2]string{fmt.Sprintf("%d long-1@%d Odd", n, n-1), fmt.Sprintf("%d long-1@%d Even", n-4099, n-4100)}},
		{"the log forwards", nil, n, [2]string{"1 long-1@0 Even", fmt.Sprintf("%d long-1@%d Odd", n, n-1)}},
		{"the log backwards", []string{"--backwards"}, n, [2]string{fmt.Sprintf("%d long-1@%d Odd", n, n-1), "1 long-1@0 Even"}},
		{"the filtered log", []string{"--type", "Odd"}, n / 2, [2]string{"2 long-1@1 Odd", fmt.Sprintf("%d long-1@%d Odd", n, n-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summary(mustRun(t, runRead, append([]string{"--data", dir}, tt.args...)...))
			if len(got) != tt.count {
				t.Fatalf("got %d events, want %d", len(got), tt.count)
			}
			if got[0] != tt.firstLast[0] || got[len(got)-1] != tt.firstLast[1] {
				t.Errorf("first and last %q, %q; want %q", got[0], got[len(got)-1], tt.firstLast)
			}
		})
	}
}

func TestReadOfAMissingStreamIsNotFound(t *testing.T) {
	dir := t.TempDir()
	seedLog(t, dir)
	_, _, err := runCmd(t, runRead, "--data", dir, "order-99")
	if !errors.Is(err, verity.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}

func TestReadDoesNotCreateAMissingDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	_, _, err := runCmd(t, runRead, "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v, want an error saying the directory does not exist", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("read created the data directory")
	}
}

func TestReadRejectsBadCommandLines(t *testing.T) {
	dir := t.TempDir() // usage errors are found before the store is opened
	tests := []struct {
		name string
		args []string
	}{
		{"a filter with a stream", []string{"--type", "OrderPlaced", "order-1"}},
		{"--since with a stream", []string{"--since", "2000-01-01T00:00:00Z", "order-1"}},
		{"--since with --from", []string{"--since", "2000-01-01T00:00:00Z", "--from", "1"}},
		{"a bad regexp", []string{"--stream-regexp", "(order"}},
		{"a negative limit", []string{"--limit", "-1"}},
		{"a bad --from", []string{"--from", "middle"}},
		{"a bad --since", []string{"--since", "yesterday"}},
		{"two streams", []string{"order-1", "order-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, runRead, append([]string{"--data", dir}, tt.args...)...)
			wantUsageError(t, err)
		})
	}
}
