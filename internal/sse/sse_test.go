package sse

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestMessagesAndCommentsAreFramedAndFlushed(t *testing.T) {
	rec := httptest.NewRecorder()
	w := Start(rec, time.Second)
	if err := w.Message("changed", "", []byte("{\"a\":1}\n{\"b\":2}")); err != nil {
		t.Fatal(err)
	}
	if err := w.Message("event", "42", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Comment("ping"); err != nil {
		t.Fatal(err)
	}
	w.End()
	want := "event: changed\ndata: {\"a\":1}\ndata: {\"b\":2}\n\nid: 42\nevent: event\ndata: {}\n\n: ping\n\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("stream:\n%q\nwant\n%q", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); rec.Code != 200 || ct != "text/event-stream" || !rec.Flushed {
		t.Errorf("answer %d %q flushed %v, want 200 text/event-stream flushed", rec.Code, ct, rec.Flushed)
	}
}
