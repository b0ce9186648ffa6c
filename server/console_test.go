package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/auth"
	"github.com/verity-dev/verity/server"
)

// getJSON sends GET with basic auth (user "" for none), checks the status and decodes the
// body into out (when not nil).
func getJSON(t testing.TB, c *http.Client, url, user, password string, status int, out any) {
	t.Helper()
	code, body := httpDo(t, c, "GET", url, "", user, password)
	if code != status {
		t.Fatalf("GET %s as %q: status %d, want %d; %s", url, user, code, status, body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatalf("GET %s: body %q: %v", url, body, err)
		}
	}
}

type consoleEvent struct {
	ID          string `json:"id"`
	Stream      string `json:"stream"`
	CausationID string `json:"causationId"`
}

func streamNames(evs []consoleEvent) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Stream)
	}
	return strings.Join(out, ",")
}

// TestConsoleSupportHonoursAccessRules runs the console's endpoints on a secured server
// with a user limited by rules to the order category: search, chain and correlation leave
// out the invoice stream they may not read; stats are for admins and $ops.
func TestConsoleSupportHonoursAccessRules(t *testing.T) {
	certFile, keyFile, pool := testCert(t)
	srv := start(t, server.Config{
		TLSCert: certFile, TLSKey: keyFile, AdminPassword: "s3cret-admin",
		Access: []auth.Rule{{Roles: []string{"orders-service"}, Categories: []string{"order"}, Actions: []auth.Action{auth.Read, auth.Write}}},
	})
	base := "https://" + srv.Addr().String()
	hc := tlsClient(pool)
	admin := auth.Principal{Name: "admin", Roles: []string{auth.RoleAdmins}}
	for _, u := range []struct{ name, role string }{{"orders", "orders-service"}, {"watch", auth.RoleOps}} {
		if err := srv.Auth().CreateUser(t.Context(), admin, u.name, u.name+"-pw", []string{u.role}); err != nil {
			t.Fatalf("CreateUser %s: %v", u.name, err)
		}
	}

	// order-1 (root) -> invoice-1 -> order-2, one correlation.
	root, invoice, order2 := uuid.New(), uuid.New(), uuid.New()
	ev := func(id uuid.UUID, cause string) verity.EventData {
		md := fmt.Sprintf(`{"$correlationId":%q,"$causationId":%q}`, root, cause)
		if cause == "" {
			md = ""
		}
		return verity.EventData{ID: id, Type: "E", Data: []byte(`{}`), Metadata: []byte(md)}
	}
	st := srv.Store()
	for _, a := range []struct {
		stream string
		e      verity.EventData
	}{{"order-1", ev(root, "")}, {"invoice-1", ev(invoice, root.String())}, {"order-2", ev(order2, invoice.String())}} {
		if _, err := st.Append(t.Context(), a.stream, verity.Any(), a.e); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the event index to catch up", func() bool {
		s, err := srv.EventIndex().Status(t.Context())
		return err == nil && s.LagEvents == 0 && s.Position > 0
	})

	t.Run("search lists only the streams the user may read", func(t *testing.T) {
		var a struct {
			Streams []struct{ Name string } `json:"streams"`
			Next    string                  `json:"next"`
		}
		getJSON(t, hc, base+"/streams", "orders", "orders-pw", http.StatusOK, &a)
		var names []string
		for _, s := range a.Streams {
			names = append(names, s.Name)
		}
		if strings.Join(names, ",") != "order-2,order-1" || a.Next != "" {
			t.Errorf("orders' search = %v next %q, want order-2,order-1", names, a.Next)
		}
		getJSON(t, hc, base+"/streams?prefix=inv", "admin", "s3cret-admin", http.StatusOK, &a)
		if len(a.Streams) != 1 || a.Streams[0].Name != "invoice-1" {
			t.Errorf("admin's search for inv = %+v", a.Streams)
		}
		getJSON(t, hc, base+"/streams", "", "", http.StatusUnauthorized, nil)
	})
	t.Run("the chain and the correlation leave out the hidden stream", func(t *testing.T) {
		var c struct {
			Effects     []consoleEvent `json:"effects"`
			Correlation []consoleEvent `json:"correlation"`
		}
		getJSON(t, hc, base+"/events/"+root.String()+"/chain", "admin", "s3cret-admin", http.StatusOK, &c)
		if streamNames(c.Effects) != "invoice-1,order-2" {
			t.Errorf("admin's effects = %s", streamNames(c.Effects))
		}
		getJSON(t, hc, base+"/events/"+root.String()+"/chain", "orders", "orders-pw", http.StatusOK, &c)
		if streamNames(c.Effects) != "order-2" || c.Effects[0].CausationID != invoice.String() {
			t.Errorf("orders' effects = %+v, want order-2 alone, caused by the invoice", c.Effects)
		}
		if streamNames(c.Correlation) != "order-2" {
			t.Errorf("orders' correlation = %s, want order-2", streamNames(c.Correlation))
		}
		var corr struct {
			Events []consoleEvent `json:"events"`
		}
		getJSON(t, hc, base+"/correlations/"+root.String(), "orders", "orders-pw", http.StatusOK, &corr)
		if streamNames(corr.Events) != "order-2,order-1" {
			t.Errorf("orders' correlation = %s, want order-2,order-1", streamNames(corr.Events))
		}
		getJSON(t, hc, base+"/events/"+invoice.String(), "orders", "orders-pw", http.StatusNotFound, nil)
		getJSON(t, hc, base+"/events/"+invoice.String(), "admin", "s3cret-admin", http.StatusOK, nil)
	})
	t.Run("an anonymous caller cannot tell what exists from what they may not read", func(t *testing.T) {
		// Each pair is something that exists, hidden from them, and something that does
		// not exist: the answers must be the same.
		missing := uuid.NewString()
		for _, pair := range [][2]string{
			{"/events/" + invoice.String(), "/events/" + missing},
			{"/events/" + invoice.String() + "/chain", "/events/" + missing + "/chain"},
			{"/correlations/" + root.String(), "/correlations/" + missing},
			{"/streams?prefix=invoice-", "/streams?prefix=nothing-"},
			{"/streams?prefix=inv", "/streams?prefix=not"},
		} {
			hiddenCode, hiddenBody := httpDo(t, hc, "GET", base+pair[0], "", "", "")
			missingCode, missingBody := httpDo(t, hc, "GET", base+pair[1], "", "", "")
			if hiddenCode != missingCode {
				t.Errorf("anonymous GET %s = %d %s\nbut GET %s = %d %s", pair[0], hiddenCode, hiddenBody, pair[1], missingCode, missingBody)
			}
		}
	})
	t.Run("stats are for admins and $ops", func(t *testing.T) {
		var s struct {
			LastPosition       uint64            `json:"lastPosition"`
			Appends            uint64            `json:"appends"`
			GroupCommits       uint64            `json:"groupCommits"`
			EventIndexPosition *uint64           `json:"eventIndexPosition"`
			Health             map[string]string `json:"health"`
		}
		getJSON(t, hc, base+"/stats", "watch", "watch-pw", http.StatusOK, &s)
		if s.LastPosition == 0 || s.Appends == 0 || s.GroupCommits == 0 || s.EventIndexPosition == nil {
			t.Errorf("stats = %+v", s)
		}
		for _, part := range []string{"store", "registry", "groups", "eventIndex"} {
			if s.Health[part] != "ok" {
				t.Errorf("health of %s = %q, want ok", part, s.Health[part])
			}
		}
		getJSON(t, hc, base+"/stats", "orders", "orders-pw", http.StatusForbidden, nil)
		getJSON(t, hc, base+"/stats", "", "", http.StatusUnauthorized, nil)
	})
	t.Run("the console's files are served to anyone at /ui/", func(t *testing.T) {
		code, body := httpGet(t, hc, base+"/ui/")
		if code != http.StatusOK || !strings.Contains(strings.ToLower(body), "<html") {
			t.Errorf("/ui/ = %d %.100s", code, body)
		}
		noRedirect := *hc
		noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := noRedirect.Get(base + "/ui")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
			t.Errorf("/ui = %d to %q, want 301 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestEventIndexRebuildsAndStatsStreamEndsAtShutdown: the stats stream ends when the
// server shuts down; the index file deleted while it is down is rebuilt at the next start;
// and the setting that turns the index off makes the event endpoints answer 503.
func TestEventIndexRebuildsAndStatsStreamEndsAtShutdown(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{Data: dir, Listen: "127.0.0.1:0", Insecure: true}, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr().String()
	id := uuid.New()
	if _, err := srv.Store().Append(t.Context(), "order-1", verity.Any(), verity.EventData{ID: id, Type: "E", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event index to catch up", func() bool {
		code, _ := httpGet(t, http.DefaultClient, base+"/events/"+id.String())
		return code == http.StatusOK
	})

	resp, err := http.Get(base + "/stats/stream") // no Accept header: curl's way
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("/stats/stream = %d %q", resp.StatusCode, ct)
	}
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if body := <-done; !strings.Contains(body, "event: stats\n") {
		t.Errorf("stats stream sent %q, want stats events", body)
	}

	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, server.EventIndexFile+suffix))
	}
	srv2 := start(t, server.Config{Data: dir, Insecure: true})
	base2 := "http://" + srv2.Addr().String()
	waitFor(t, "the rebuilt index to find the event", func() bool {
		code, _ := httpGet(t, http.DefaultClient, base2+"/events/"+id.String())
		return code == http.StatusOK
	})
	if _, err := os.Stat(filepath.Join(dir, server.EventIndexFile)); err != nil {
		t.Errorf("index file not recreated: %v", err)
	}

	off := start(t, server.Config{Insecure: true, DisableEventIndex: true})
	if code, _ := httpGet(t, http.DefaultClient, "http://"+off.Addr().String()+"/events/"+id.String()); code != http.StatusServiceUnavailable {
		t.Errorf("event lookup with the index off = %d, want 503", code)
	}
	if off.EventIndex() != nil {
		t.Errorf("EventIndex() with the index off is not nil")
	}
}

// TestStatsCountStreams: /stats counts the streams written, through the event index, and
// says up to which position; with the index off it leaves the count out.
func TestStatsCountStreams(t *testing.T) {
	srv := start(t, server.Config{Insecure: true})
	base := "http://" + srv.Addr().String()
	var last uint64
	for _, stream := range []string{"order-1", "order-2", "order-1"} {
		r, err := srv.Store().Append(t.Context(), stream, verity.Any(), verity.EventData{ID: uuid.New(), Type: "E", Data: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		last = r.Position
	}
	type stats struct {
		LastPosition       uint64  `json:"lastPosition"`
		Streams            *uint64 `json:"streams"`
		StreamsIndexedUpTo *uint64 `json:"streamsIndexedUpTo"`
	}
	var s stats
	waitFor(t, "the streams to be counted", func() bool {
		s = stats{}
		getJSON(t, http.DefaultClient, base+"/stats", "", "", http.StatusOK, &s)
		return s.StreamsIndexedUpTo != nil && *s.StreamsIndexedUpTo >= last
	})
	if s.Streams == nil || *s.Streams != 2 || *s.StreamsIndexedUpTo != last || s.LastPosition != last {
		t.Errorf("stats = %+v (streams %v), want 2 streams up to %d", s, s.Streams, last)
	}

	off := start(t, server.Config{Insecure: true, DisableEventIndex: true})
	var raw map[string]any
	getJSON(t, http.DefaultClient, "http://"+off.Addr().String()+"/stats", "", "", http.StatusOK, &raw)
	for _, k := range []string{"streams", "streamsIndexedUpTo"} {
		if _, ok := raw[k]; ok {
			t.Errorf("stats with the index off hold %q: %v", k, raw[k])
		}
	}
}
