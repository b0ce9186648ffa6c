package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/client"
	"github.com/verity-dev/verity/engine"
)

// groups runs `verity groups ARGS --server http://addr`.
func groups(t testing.TB, addr string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCmd(t, runGroups, append(args, "--server", "http://"+addr)...)
}

// mustGroups is groups for an action that must succeed; it returns its stdout.
func mustGroups(t testing.TB, addr string, args ...string) string {
	t.Helper()
	stdout, stderr, err := groups(t, addr, args...)
	if err != nil {
		t.Fatalf("groups %q: %v (stderr %q)", args, err, stderr)
	}
	return stdout
}

// groupInfo returns what `verity groups info --json` prints of a group.
func groupInfo(t testing.TB, addr, stream, group string) groupJSON {
	t.Helper()
	var g groupJSON
	out := mustGroups(t, addr, "info", "--json", stream, group)
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("info --json printed %q: %v", out, err)
	}
	return g
}

// waitGroup waits until the server's description of a group satisfies cond, failing the
// test after a while. It asks through the client, not the command, to keep the wait cheap.
func waitGroup(t testing.TB, addr, stream, group, what string, cond func(verity.GroupInfo) bool) {
	t.Helper()
	c, err := client.Dial("http://"+addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := c.GetGroup(t.Context(), stream, group)
		if err != nil {
			t.Fatalf("get group %s/%s: %v", stream, group, err)
		}
		if cond(info) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; the group is %+v", what, info)
		}
		<-tick.C
	}
}

// appendEvents appends events of the given types to stream through the server.
func appendEvents(t testing.TB, addr, stream string, types ...string) {
	t.Helper()
	for i, typ := range types {
		mustRun(t, runAppend, "--server", "http://"+addr, stream, fmt.Sprintf(`{"n":%d}`, i), "--type", typ)
	}
}

// tableRows returns the rows of a table printed by `groups list`, each as its fields, after
// checking the header.
func tableRows(t testing.TB, out string) [][]string {
	t.Helper()
	ls := lines(out)
	want := "SOURCE GROUP STRATEGY STATUS CONSUMERS IN-FLIGHT PARKED LAG CHECKPOINT"
	if len(ls) == 0 || strings.Join(strings.Fields(ls[0]), " ") != want {
		t.Fatalf("list printed %q, want a table with the header %q", out, want)
	}
	var rows [][]string
	for _, l := range ls[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestGroupsCreateListInfoUpdateDelete(t *testing.T) {
	addr := startDevServer(t)
	appendEvents(t, addr, "order-1", "OrderPlaced", "OrderShipped")

	out := mustGroups(t, addr, "create", "order-1", "billing", "--strategy", "pinned", "--max-retry", "3", "--message-timeout", "10s")
	if out != "created group \"billing\" on order-1\n" {
		t.Errorf("create printed %q", out)
	}
	mustGroups(t, addr, "create", "$all", "audit", "--category", "order", "--event-type", "OrderPlaced", "--from-end")

	t.Run("a second group of the same name is a conflict", func(t *testing.T) {
		_, _, err := groups(t, addr, "create", "order-1", "billing")
		if !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("got %v, want a conflict", err)
		}
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "verity: conflict: ") {
			t.Errorf("exit code %d, stderr %q; want %d and the error's kind", code, stderr.String(), exitFailure)
		}
	})

	t.Run("list shows every group, or those of one source", func(t *testing.T) {
		rows := tableRows(t, mustGroups(t, addr, "list"))
		if len(rows) != 2 {
			t.Fatalf("list printed %q, want 2 groups", rows)
		}
		// Ordered by source: "$all" sorts before "order-1".
		wantAudit := []string{"$all", "audit", "RoundRobin", "Idle", "0", "0", "0"}
		wantBilling := []string{"order-1", "billing", "Pinned", "Idle", "0", "0", "0", "2", "-"}
		if got := rows[0][:7]; !reflect.DeepEqual(got, wantAudit) {
			t.Errorf("first row %q, want it to start with %q", rows[0], wantAudit)
		}
		if !reflect.DeepEqual(rows[1], wantBilling) {
			t.Errorf("second row %q, want %q", rows[1], wantBilling)
		}
		for source, want := range map[string]string{"order-1": "billing", "$all": "audit"} {
			rows := tableRows(t, mustGroups(t, addr, "list", source))
			if len(rows) != 1 || rows[0][1] != want {
				t.Errorf("list %s printed %q, want only %s", source, rows, want)
			}
		}
		stdout, stderr, err := groups(t, addr, "list", "customer-1")
		if err != nil || stdout != "" || !strings.Contains(stderr, "no consumer groups on customer-1") {
			t.Errorf("list of a stream without groups: %v, stdout %q, stderr %q", err, stdout, stderr)
		}
	})

	t.Run("info shows every setting", func(t *testing.T) {
		g := groupInfo(t, addr, "order-1", "billing")
		want := settingsJSON{
			Strategy: "Pinned", MessageTimeoutMs: 10000, MaxRetryCount: 3, Quarantine: "ordered",
			LiveBufferSize: 500, ReadBatchSize: 20, HistoryBufferSize: 500,
			CheckpointAfterMs: 2000, CheckpointLowerBound: 10, CheckpointUpperBound: 1000,
		}
		if g.Stream != "order-1" || g.Group != "billing" || g.Status != "Idle" || g.Filter != nil {
			t.Errorf("info printed %+v", g)
		}
		if g.Settings != want {
			t.Errorf("settings %+v, want %+v", g.Settings, want)
		}
		mustGroups(t, addr, "create", "order-1", "late", "--from", "1")
		if s := groupInfo(t, addr, "order-1", "late").Settings; s.From != 1 || s.FromEnd {
			t.Errorf("--from 1 gave from %d, fromEnd %v", s.From, s.FromEnd)
		}
		mustGroups(t, addr, "delete", "order-1", "late")
		text := mustGroups(t, addr, "info", "$all", "audit")
		for _, want := range []string{"filter:", "--category order --event-type OrderPlaced", "from:", "(the end at creation)", "max retry count:", "checkpoint:", "none yet"} {
			if !strings.Contains(text, want) {
				t.Errorf("info of the log group does not show %q:\n%s", want, text)
			}
		}
	})

	t.Run("update changes only the settings given", func(t *testing.T) {
		out := mustGroups(t, addr, "update", "order-1", "billing", "--strategy", "round-robin", "--max-consumers", "2", "--quarantine", "off")
		if out != "updated group \"billing\" on order-1\n" {
			t.Errorf("update printed %q", out)
		}
		s := groupInfo(t, addr, "order-1", "billing").Settings
		if s.Strategy != "RoundRobin" || s.MaxConsumers != 2 || s.Quarantine != "off" || s.MaxRetryCount != 3 || s.MessageTimeoutMs != 10000 {
			t.Errorf("settings after update %+v, want RoundRobin, 2 consumers, quarantine off, and the rest kept", s)
		}
		mustGroups(t, addr, "update", "order-1", "billing", "--max-retry", "0", "--message-timeout", "never")
		if s := groupInfo(t, addr, "order-1", "billing").Settings; s.MaxRetryCount != -1 || s.MessageTimeoutMs != -1 {
			t.Errorf("--max-retry 0 and --message-timeout never gave %+v, want -1 for both (park at once, never time out)", s)
		}
	})

	t.Run("delete removes the group", func(t *testing.T) {
		if out := mustGroups(t, addr, "delete", "order-1", "billing"); out != "deleted group \"billing\" on order-1\n" {
			t.Errorf("delete printed %q", out)
		}
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"groups", "info", "order-1", "billing", "--server", "http://" + addr}, &stdout, &stderr)
		if code != exitFailure || !strings.Contains(stderr.String(), "verity: not_found: ") || !strings.Contains(stderr.String(), `"billing"`) {
			t.Errorf("info of a deleted group: exit code %d, stderr %q; want %d and a not_found error naming it", code, stderr.String(), exitFailure)
		}
		rows := tableRows(t, mustGroups(t, addr, "list"))
		if len(rows) != 1 || rows[0][1] != "audit" {
			t.Errorf("list after delete printed %q, want only audit", rows)
		}
	})
}

func TestGroupsConsumeAcksEachEvent(t *testing.T) {
	addr := startDevServer(t)
	appendEvents(t, addr, "order-1", "OrderPlaced", "OrderPaid", "OrderShipped")
	mustGroups(t, addr, "create", "order-1", "billing")

	stdout, stderr, err := groups(t, addr, "consume", "order-1", "billing", "--count", "3")
	if err != nil {
		t.Fatalf("consume: %v (stderr %q)", err, stderr)
	}
	want := []string{"1 order-1@0 OrderPlaced", "2 order-1@1 OrderPaid", "3 order-1@2 OrderShipped"}
	if got := summary(stdout); !reflect.DeepEqual(got, want) {
		t.Errorf("consume printed %q, want %q", got, want)
	}
	if !strings.Contains(stderr, "3 event(s) acked") {
		t.Errorf("stderr %q does not report 3 events acked", stderr)
	}
	waitGroup(t, addr, "order-1", "billing", "3 acks and no consumer", func(i verity.GroupInfo) bool {
		return i.Acked == 3 && len(i.Consumers) == 0
	})

	// Had the first three not been acked, they would come again before the new one.
	appendEvents(t, addr, "order-1", "OrderDelivered")
	stdout = mustGroups(t, addr, "consume", "order-1", "billing", "--count", "1", "--json")
	var e eventJSON
	if err := json.Unmarshal([]byte(stdout), &e); err != nil || e.Revision != 3 || e.Type != "OrderDelivered" {
		t.Errorf("the next consume printed %q (%v), want only the new event, order-1@3, as JSON", stdout, err)
	}
}

func TestGroupsParkReplayAndConsumeAgain(t *testing.T) {
	addr := startDevServer(t)
	appendEvents(t, addr, "order-1", "OrderPlaced", "OrderPaid")
	mustGroups(t, addr, "create", "order-1", "billing")

	stdout, stderr, err := groups(t, addr, "consume", "order-1", "billing", "--count", "2", "--nack", "park")
	if err != nil {
		t.Fatalf("consume --nack park: %v (stderr %q)", err, stderr)
	}
	if n := len(lines(stdout)); n != 2 || !strings.Contains(stderr, "2 event(s) nacked (park)") {
		t.Fatalf("consume --nack park printed %d events, stderr %q; want 2 parked", n, stderr)
	}
	waitGroup(t, addr, "order-1", "billing", "2 parked events", func(i verity.GroupInfo) bool { return i.Parked == 2 })
	if rows := tableRows(t, mustGroups(t, addr, "list", "order-1")); len(rows) != 1 || rows[0][6] != "2" {
		t.Errorf("list printed %q, want 2 in the PARKED column", rows)
	}

	out := mustGroups(t, addr, "replay-parked", "order-1", "billing", "--limit", "1")
	if out != "put 1 parked event(s) of group \"billing\" on order-1 back in line\n" {
		t.Errorf("replay-parked --limit 1 printed %q", out)
	}
	stdout = mustGroups(t, addr, "consume", "order-1", "billing", "--count", "1")
	if got, want := summary(stdout), []string{"1 order-1@0 OrderPlaced"}; !reflect.DeepEqual(got, want) {
		t.Errorf("consume after replaying one printed %q, want %q", got, want)
	}
	waitGroup(t, addr, "order-1", "billing", "1 parked event left", func(i verity.GroupInfo) bool { return i.Parked == 1 })

	mustGroups(t, addr, "replay-parked", "order-1", "billing")
	stdout = mustGroups(t, addr, "consume", "order-1", "billing", "--count", "1")
	if got, want := summary(stdout), []string{"2 order-1@1 OrderPaid"}; !reflect.DeepEqual(got, want) {
		t.Errorf("consume after replaying the rest printed %q, want %q", got, want)
	}
	waitGroup(t, addr, "order-1", "billing", "nothing parked or in flight", func(i verity.GroupInfo) bool {
		return i.Parked == 0 && i.InFlight == 0 && i.Acked == 2
	})
}

func TestGroupsConsumeRunsUntilInterrupted(t *testing.T) {
	addr := startDevServer(t)
	mustGroups(t, addr, "create", "$all", "audit", "--category", "order")
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	stop := startTail(t, func(ctx context.Context) error {
		return runGroups(ctx, []string{"consume", "$all", "audit", "--server", "http://" + addr}, stdout, stderr)
	})
	stderr.waitFor(t, "the join", func(s string) bool { return strings.Contains(s, "joined group") })

	appendEvents(t, addr, "customer-1", "CustomerRegistered")
	appendEvents(t, addr, "order-1", "OrderPlaced")
	out := stdout.waitFor(t, "the order event", func(s string) bool { return len(lines(s)) >= 1 })
	waitGroup(t, addr, "$all", "audit", "the ack", func(i verity.GroupInfo) bool { return i.Acked == 1 })
	if err := stop(); err != nil {
		t.Fatalf("an interrupted consume returned %v, want nil", err)
	}
	// The filter leaves customer-1 out.
	if got := lines(out); len(got) != 1 || !strings.Contains(got[0], " order-1@0 OrderPlaced ") {
		t.Errorf("consume printed %q, want only order-1@0 OrderPlaced", got)
	}
	if !strings.Contains(stderr.String(), "1 event(s) acked") {
		t.Errorf("stderr %q does not report the ack", stderr.String())
	}
}

func TestGroupsWorkOnADataDirectory(t *testing.T) {
	dir := t.TempDir()
	withEngine(t, dir, func(e *engine.Engine) {
		mustAppend(t, e, "order-1", jsonEvent("OrderPlaced", `{}`))
	})
	mustRun(t, runGroups, "create", "order-1", "billing", "--data", dir)
	out := mustRun(t, runGroups, "consume", "order-1", "billing", "--count", "1", "--data", dir)
	if got, want := summary(out), []string{"1 order-1@0 OrderPlaced"}; !reflect.DeepEqual(got, want) {
		t.Errorf("consume printed %q, want %q", got, want)
	}
	// The definition, and the checkpoint written as the command closed, outlive it.
	rows := tableRows(t, mustRun(t, runGroups, "list", "--data", dir))
	if len(rows) != 1 || rows[0][1] != "billing" || rows[0][8] != "0" {
		t.Errorf("list printed %q, want billing checkpointed at 0", rows)
	}
}

func TestGroupsReportAnUnreachableServer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"groups", "list", "--server", "http://127.0.0.1:1"}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "verity: unavailable: cannot reach the server at http://127.0.0.1:1") {
		t.Errorf("exit code %d, stderr %q; want %d and how to start a server", code, stderr.String(), exitFailure)
	}
}

func TestGroupsHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"groups", "--help"}, []string{"verity groups ACTION", "replay-parked STREAM GROUP", "--server URL", "Examples:"}},
		{[]string{"help", "groups"}, []string{"verity groups ACTION"}},
		{[]string{"groups", "help", "create"}, []string{"verity groups create [flags] STREAM GROUP", "--strategy NAME", "--category CATEGORY"}},
		{[]string{"groups", "consume", "--help"}, []string{"--nack ACTION", "--count N", "Examples:"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tt.args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit code %d, stderr %q", code, stderr.String())
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("help does not mention %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}

func TestGroupsRejectBadCommandLines(t *testing.T) {
	// Nothing listens on port 1: usage errors are found before the server is asked.
	const server = "http://127.0.0.1:1"
	tests := []struct {
		name      string
		args      []string
		wantInMsg string
	}{
		{"no action", nil, "missing ACTION"},
		{"an unknown action", []string{"frobnicate"}, `unknown action "frobnicate"`},
		{"flags before the action", []string{"--server", server, "list"}, "give the action before the flags"},
		{"list with two streams", []string{"list", "order-1", "order-2"}, "too many arguments"},
		{"info without a group", []string{"info", "order-1"}, "want STREAM GROUP"},
		{"delete with three arguments", []string{"delete", "order-1", "billing", "x"}, "too many arguments"},
		{"an empty group name", []string{"create", "order-1", ""}, "GROUP name is empty"},
		{"an unknown strategy", []string{"create", "order-1", "billing", "--strategy", "random"}, `--strategy "random"`},
		{"an unknown quarantine mode", []string{"create", "order-1", "billing", "--quarantine", "strict"}, `--quarantine "strict"`},
		{"--from with --from-end", []string{"create", "order-1", "billing", "--from", "3", "--from-end"}, "either --from 3 or --from-end"},
		{"a bad --from", []string{"create", "order-1", "billing", "--from", "now"}, "want start, end or a number"},
		{"a bad --message-timeout", []string{"create", "order-1", "billing", "--message-timeout", "soon"}, "want a duration"},
		{"a negative --max-retry", []string{"create", "order-1", "billing", "--max-retry", "-1"}, "--max-retry -1 is negative"},
		{"a negative --max-consumers", []string{"update", "order-1", "billing", "--max-consumers", "-2"}, "--max-consumers -2"},
		{"a filter on a stream group", []string{"create", "order-1", "billing", "--category", "order"}, `not to stream "order-1"`},
		{"a filter on update", []string{"update", "$all", "audit", "--event-type", "OrderPlaced"}, "filter cannot be changed"},
		{"a bad regexp", []string{"create", "$all", "audit", "--type-regexp", "[a"}, "regular expression"},
		{"a negative --limit", []string{"replay-parked", "order-1", "billing", "--limit", "-1"}, "--limit -1"},
		{"nack stop", []string{"consume", "order-1", "billing", "--nack", "stop"}, "want park, retry or skip"},
		{"an unknown nack action", []string{"consume", "order-1", "billing", "--nack", "drop"}, `--nack "drop"`},
		{"a negative --count", []string{"consume", "order-1", "billing", "--count", "-1"}, "--count -1"},
		{"an unknown flag", []string{"list", "--strategy", "pinned"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				args = append(args, "--server", server)
			}
			_, _, err := runCmd(t, runGroups, args...)
			wantUsageError(t, err)
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantInMsg)
			}
		})
	}
}

// groupJSON decodes what `verity groups info --json` prints: the HTTP API's shape of a group
// (httpapi.GroupInfoJSON), written out here so that a change of that shape fails a test.
type groupJSON struct {
	Stream   string          `json:"stream"`
	Group    string          `json:"group"`
	Filter   json.RawMessage `json:"filter"`
	Settings settingsJSON    `json:"settings"`
	Status   string          `json:"status"`
}

type settingsJSON struct {
	From                 uint64 `json:"from"`
	FromEnd              bool   `json:"fromEnd"`
	ResolveLinks         bool   `json:"resolveLinks"`
	Strategy             string `json:"strategy"`
	MessageTimeoutMs     int64  `json:"messageTimeoutMs"`
	MaxRetryCount        int    `json:"maxRetryCount"`
	LiveBufferSize       int    `json:"liveBufferSize"`
	ReadBatchSize        int    `json:"readBatchSize"`
	HistoryBufferSize    int    `json:"historyBufferSize"`
	CheckpointAfterMs    int64  `json:"checkpointAfterMs"`
	CheckpointLowerBound int    `json:"checkpointLowerBound"`
	CheckpointUpperBound int    `json:"checkpointUpperBound"`
	MaxConsumers         int    `json:"maxConsumers"`
	ExtraStatistics      bool   `json:"extraStatistics"`
	Quarantine           string `json:"quarantine"`
}
