package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestServerTargetReportsVerityServerRowsBesideTheEngine(t *testing.T) {
	opts := Options{
		Systems:       []string{systemVerity, systemServer},
		Workloads:     ServerWorkloads,
		Writers:       []int{1, 4},
		Batches:       []int{1},
		Duration:      200 * time.Millisecond,
		Events:        2000,
		DataDir:       t.TempDir(),
		JSON:          true,
		ServerCommand: verityCommand(t),
	}
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), opts, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("with JSON, stderr should stay empty, got %q", stderr.String())
	}
	seen := map[string]int{}
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.EventsPerSec <= 0 || r.Events <= 0 || r.Ops <= 0 || r.P50ms < 0 || r.P99ms < r.P50ms {
			t.Errorf("line %s: want positive events_per_sec, events and ops, p99 ≥ p50 ≥ 0", sc.Text())
		}
		seen[r.System+" "+r.Workload]++
	}
	for _, sys := range []string{systemVerity, systemServer} {
		want := map[string]int{WorkloadAppend: 2, WorkloadReplay: 1, WorkloadE2E: 1, WorkloadReadStream: 0}
		for w, n := range want {
			if got := seen[sys+" "+w]; got != n {
				t.Errorf("%s %s: %d result lines, want %d", sys, w, got, n)
			}
		}
	}
	// Every store's directory, the servers' included, was removed: each server had exited.
	left, err := os.ReadDir(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind in the data directory: %v", left)
	}
}

func TestServerStopsOnCloseAndKeepsWhatItAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cmd := verityCommand(t)
	ctx := t.Context()
	s, err := openServer(ctx, cmd, dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Append(ctx, "kept-1", 0, [][]byte{makePayload(0), makePayload(1)})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "kept-1", 0, [][]byte{makePayload(2)}); err == nil {
		t.Error("append with a stale expected revision succeeded over the network")
	}
	if _, err := s.Append(ctx, "kept-1", tok, [][]byte{makePayload(2)}); err != nil {
		t.Error(err)
	}
	p := s.proc
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-p.exited:
	default:
		t.Fatal("Close returned before the server process exited")
	}
	if !p.cmd.ProcessState.Success() {
		t.Errorf("server exited with %v after SIGTERM, want 0", p.cmd.ProcessState)
	}

	// A server on the same data finds every acknowledged event.
	s, err = openServer(ctx, cmd, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.ReadStream(ctx, "kept-1", 100); err != nil || n != 3 {
		t.Errorf("after a restart, read %d events (%v), want 3", n, err)
	}
}

func TestServerThatExitsAtStartIsReportedWithItsLog(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("needs /bin/sh to stand in for a failing server")
	}
	// sh -c SCRIPT takes the bench's flags as $0, $1...: the script ignores them.
	cmd := []string{"/bin/sh", "-c", "echo 'cannot open the data directory' >&2; exit 3"}
	_, err := openServer(t.Context(), cmd, t.TempDir())
	if err == nil {
		t.Fatal("a server that exits at once was reported ready")
	}
	for _, want := range []string{"did not become ready", "exited", "exit status 3", "cannot open the data directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if errors.Is(err, errPortTaken) {
		t.Errorf("a failure unrelated to the port was retried as a port clash: %v", err)
	}
}

func TestServerRejectsTheScaleWorkload(t *testing.T) {
	err := Options{Systems: []string{systemServer}, Workloads: []string{WorkloadScale}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "scale") || !strings.Contains(err.Error(), systemServer) {
		t.Errorf("Validate = %v, want an error naming scale and %s", err, systemServer)
	}
	if err := (Options{Systems: []string{systemVerity, systemServer}, Workloads: ServerWorkloads}).Validate(); err != nil {
		t.Errorf("the server target's options: %v", err)
	}
}

func TestServerThatDiesMidRunIsReportedOnClose(t *testing.T) {
	s, err := openServer(t.Context(), verityCommand(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.proc.cmd.Process.Kill(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	<-s.proc.exited
	if _, err := s.Append(t.Context(), "gone-1", 0, [][]byte{makePayload(0)}); err == nil {
		t.Error("an append to a killed server succeeded")
	}
	err = s.Close()
	if err == nil || !strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), "server-0.log") {
		t.Errorf("Close = %v, want the exit status and the server's log", err)
	}
}
