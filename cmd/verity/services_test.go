package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity/registry"
	"github.com/verity-dev/verity/server"
)

// serviceRows splits the table that list prints into its rows of fields.
func serviceRows(t testing.TB, out string) [][]string {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	if len(rows) == 0 || rows[0][0] != "SERVICE" {
		t.Fatalf("no table in %q", out)
	}
	return rows
}

// registerAt registers instances with the registry of the server at addr.
func registerAt(t testing.TB, addr string, ins ...registry.Instance) {
	t.Helper()
	c, err := registry.NewClient("http://"+addr, registry.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, in := range ins {
		if _, err := c.Register(t.Context(), in); err != nil {
			t.Fatalf("register %+v: %v", in, err)
		}
	}
}

func TestServicesListShowsEveryInstanceOrOneService(t *testing.T) {
	addr := startDevServer(t)
	registerAt(t, addr,
		registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081", Version: "1.2"},
		registry.Instance{Service: "orders", ID: "o2", Address: "127.0.0.1:8082", Health: registry.Unhealthy, HealthReason: "warming up"},
		registry.Instance{Service: "payments", ID: "p1", Address: "127.0.0.1:9001"},
	)
	out := mustRun(t, runServices, "list", "--server", "http://"+addr)
	rows := serviceRows(t, out)
	if len(rows) != 4 || strings.Join(rows[0], " ") != "SERVICE ID ADDRESS HEALTH VERSION REGISTERED REASON" {
		t.Fatalf("list printed:\n%s", out)
	}
	if got := strings.Join(rows[2][:4], " "); got != "orders o2 127.0.0.1:8082 unhealthy" || rows[2][len(rows[2])-1] != "up" {
		t.Errorf("row of o2 = %q", rows[2])
	}
	if rows[1][4] != "1.2" || rows[3][0] != "payments" {
		t.Errorf("rows = %q", rows)
	}

	out = mustRun(t, runServices, "list", "--server", "http://"+addr, "orders", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("list orders --json printed %q, want two lines", out)
	}
	var in registry.Instance
	if err := json.Unmarshal([]byte(lines[1]), &in); err != nil || in.ID != "o2" || in.Health != registry.Unhealthy {
		t.Fatalf("second line %q: %+v, %v", lines[1], in, err)
	}

	_, stderr, err := runCmd(t, runServices, "list", "--server", "http://"+addr, "nobody")
	if err != nil || !strings.Contains(stderr, `service "nobody" has no instance`) {
		t.Fatalf("list of an empty service: %v, stderr %q", err, stderr)
	}
}

func TestServicesListReadsADataDirectory(t *testing.T) {
	dir := t.TempDir()
	srv, err := server.New(server.Config{Data: dir, Insecure: true, Listen: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Registry().Register(t.Context(), registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	rows := serviceRows(t, mustRun(t, runServices, "list", "--data", dir))
	if len(rows) != 2 || rows[1][0] != "orders" || rows[1][1] != "o1" {
		t.Fatalf("list --data printed %q", rows)
	}
}

func TestServicesWatchPrintsASnapshotThenChanges(t *testing.T) {
	addr := startDevServer(t)
	registerAt(t, addr, registry.Instance{Service: "orders", ID: "o1", Address: "127.0.0.1:8081"})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	var out strings.Builder
	go func() {
		var stderr strings.Builder
		err := runServices(ctx, []string{"watch", "--server", "http://" + addr, "orders", "--count", "2"}, &out, &stderr)
		done <- result{out.String(), err}
	}()
	// The watch's snapshot shows o1; what is registered after it starts comes as a change.
	// Registering in a loop until the command ends covers the moment before it connects.
	var res result
	for i := 2; ; i++ {
		registerAt(t, addr, registry.Instance{Service: "orders", ID: "o" + string(rune('0'+i%10)), Address: "127.0.0.1:8082"})
		select {
		case res = <-done:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	if res.err != nil {
		t.Fatalf("watch: %v", res.err)
	}
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "snapshot orders ") || !strings.HasPrefix(lines[1], "  orders/o1 127.0.0.1:8081 healthy") ||
		!strings.HasPrefix(lines[len(lines)-1], "registered orders/o") {
		t.Fatalf("watch printed:\n%s", res.out)
	}
}

func TestServicesRejectBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no action", nil, "missing ACTION"},
		{"an unknown action", []string{"frob"}, `unknown action "frob"`},
		{"flags before the action", []string{"--server", "x"}, "give the action before the flags"},
		{"a bad service name", []string{"list", "--server", "127.0.0.1:1", "Orders"}, "service name"},
		{"two services", []string{"list", "--server", "127.0.0.1:1", "a", "b"}, "too many arguments"},
		{"a watch of a data directory", []string{"watch", "--data", "x", "orders"}, "watch needs a server"},
		{"a negative count", []string{"watch", "--server", "127.0.0.1:1", "--count", "-1"}, "negative"},
		{"a bad server URL", []string{"list", "--server", "ftp://h:1"}, "unknown scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, runServices, tt.args...)
			wantUsageError(t, err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestServicesReportAnUnreachableServer(t *testing.T) {
	_, _, err := runCmd(t, runServices, "list", "--server", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "unavailable") || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("list against nothing: %v", err)
	}
}

func TestServicesHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"list", "--help"}, {"watch", "--help"}} {
		out, _, err := runCmd(t, runServices, args...)
		if err == nil || !strings.Contains(out, "--server URL") || !strings.Contains(out, "Examples:") {
			t.Errorf("%q printed %q (%v)", args, out, err)
		}
	}
}
