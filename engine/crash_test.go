package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/verity-dev/verity"
)

var (
	crashRounds = flag.Int("crash.rounds", 30, "rounds of TestCrashRecovery: each runs a child that appends, kills it, recovers and checks")
	crashSeed   = flag.Int64("crash.seed", 0, "seed of TestCrashRecovery's random choices; 0 picks one from the clock (it is logged)")
)

// The crash test's child process is this test binary started again with these variables
// set; TestMain sees crashChildEnv and runs runCrashChild instead of the tests.
const (
	crashChildEnv = "VERITY_CRASH_CHILD"
	crashDirEnv   = "VERITY_CRASH_DIR"
	crashRoundEnv = "VERITY_CRASH_ROUND"
	crashSeedEnv  = "VERITY_CRASH_SEED"
	crashSmallEnv = "VERITY_CRASH_SMALL_SEGMENTS"
	crashRetryEnv = "VERITY_CRASH_RETRIES"
)

const (
	crashWorkers       = 16
	crashOwnedStreams  = 4 // per worker, appended to with exact expected revisions
	crashSharedStreams = 8 // appended to by every worker with Any
	// crashMaxAppends bounds each worker's appends per round, which keeps the store (and
	// so the time to check it every round) modest; most rounds are killed long before.
	crashMaxAppends = 120
)

// crashConfig is the configuration of a round; the parent recovers with the same one.
// Small segments make segment rolls (sealing, creating the next file) happen during the
// run; a small index flush makes index runs and merges happen too.
func crashConfig(dir string, small bool) Config {
	cfg := Config{Dir: dir, IndexFlushEvents: 1024, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if small {
		cfg.SegmentSize = 1 << 20
		cfg.MaxEventSize = 64 << 10
		cfg.MaxAppendSize = 256 << 10
	}
	return cfg
}

// crashEvent derives an event's type, data and metadata from its id, so that the child's
// lines need only carry ids. About one event in ten carries several KiB.
func crashEvent(id uuid.UUID) verity.EventData {
	hexID := hex.EncodeToString(id[:])
	n := 8 + int(id[1])%200
	if id[2] < 26 {
		n = 2048 + int(binary.LittleEndian.Uint16(id[3:]))%6144
	}
	pad := strings.Repeat(hexID, n/len(hexID)+1)[:n]
	ev := verity.EventData{
		ID:   id,
		Type: fmt.Sprintf("Happened%d", id[0]%5),
		Data: []byte(`{"pad":"` + pad + `"}`),
	}
	if id[5]%3 == 0 {
		ev.Metadata = []byte(`{"id":"` + hexID + `"}`)
	}
	return ev
}

func ownedStream(worker, k int) string { return fmt.Sprintf("acct-%d_%d", worker, k) }
func sharedStream(k int) string        { return fmt.Sprintf("shared-%d", k) }

// A child's stdout holds one line per step, each written whole with one write:
//
//	I <tag> <stream>=<id>,<id>;<stream>=<id>...   about to append (intent)
//	A <tag> <revision>@<position>;...             Append/AppendMulti returned these results
//	E <tag> <message>                             an append failed (a test failure)
//	R                                             ready: the workers are running
//
// A retry's tag is "r<round>:<tag of the append it retries>".

type crashPart struct {
	stream string
	ids    []uuid.UUID
}

func formatParts(parts []crashPart) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.stream)
		b.WriteByte('=')
		for j, id := range p.ids {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(id.String())
		}
	}
	return b.String()
}

func parseParts(s string) ([]crashPart, error) {
	var parts []crashPart
	for _, ps := range strings.Split(s, ";") {
		stream, ids, ok := strings.Cut(ps, "=")
		if !ok {
			return nil, fmt.Errorf("part %q has no '='", ps)
		}
		p := crashPart{stream: stream}
		for _, is := range strings.Split(ids, ",") {
			id, err := uuid.Parse(is)
			if err != nil {
				return nil, fmt.Errorf("part %q: %v", ps, err)
			}
			p.ids = append(p.ids, id)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

func formatResults(res []verity.AppendResult) string {
	var b strings.Builder
	for i, r := range res {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%d@%d", r.Revision, r.Position)
	}
	return b.String()
}

func parseResults(s string) ([]verity.AppendResult, error) {
	var res []verity.AppendResult
	for _, rs := range strings.Split(s, ";") {
		var r verity.AppendResult
		if _, err := fmt.Sscanf(rs, "%d@%d", &r.Revision, &r.Position); err != nil {
			return nil, fmt.Errorf("result %q: %v", rs, err)
		}
		res = append(res, r)
	}
	return res, nil
}

// childOut writes the child's lines straight to the stdout file, unbuffered, one write per
// line, so that a line is either wholly in the pipe or not at all when the kill comes.
type childOut struct{ mu sync.Mutex }

func (o *childOut) line(format string, args ...any) {
	b := fmt.Appendf(nil, format+"\n", args...)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := os.Stdout.Write(b); err != nil {
		os.Exit(5) // the parent is gone
	}
}

// runCrashChild is the child's workload: retry what the parent asks, then append from
// crashWorkers goroutines until killed.
func runCrashChild() {
	go func() {
		// The parent kills the child within a second of its start; this only ends an
		// orphan whose parent died without doing so.
		time.Sleep(2 * time.Minute)
		os.Exit(4)
	}()
	out := &childOut{}
	fail := func(format string, args ...any) {
		out.line("E - "+format, args...)
		os.Exit(2)
	}
	dir := os.Getenv(crashDirEnv)
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		fail("bad %s: %v", crashRoundEnv, err)
	}
	seed, err := strconv.ParseInt(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		fail("bad %s: %v", crashSeedEnv, err)
	}
	e, err := Open(crashConfig(dir, os.Getenv(crashSmallEnv) == "1"))
	if err != nil {
		fail("open: %v", err)
	}
	ctx := context.Background()

	// Retries of earlier appends, with the same ids: each must land where the original did
	// if the original committed, or commit now if it did not.
	if path := os.Getenv(crashRetryEnv); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			fail("read retries: %v", err)
		}
		var wg sync.WaitGroup
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			orig, ps, _ := strings.Cut(l, " ")
			parts, err := parseParts(ps)
			if err != nil {
				fail("retries: %v", err)
			}
			tag := fmt.Sprintf("r%d:%s", round, orig)
			wg.Go(func() {
				out.line("I %s %s", tag, formatParts(parts))
				apps := make([]verity.StreamAppend, len(parts))
				for i, p := range parts {
					apps[i] = verity.StreamAppend{Stream: p.stream, Expected: verity.Any()}
					for _, id := range p.ids {
						apps[i].Events = append(apps[i].Events, crashEvent(id))
					}
				}
				res, err := e.AppendMulti(ctx, apps...)
				if err != nil {
					out.line("E %s %v", tag, err)
					os.Exit(2)
				}
				out.line("A %s %s", tag, formatResults(res))
			})
		}
		wg.Wait()
	}

	var ready sync.WaitGroup
	for g := range crashWorkers {
		ready.Add(1)
		go crashWorker(ctx, e, out, round, g, rand.New(rand.NewSource(seed+int64(g))), ready.Done)
	}
	ready.Wait()
	out.line("R")
	select {} // until killed
}

func crashWorker(ctx context.Context, e *Engine, out *childOut, round, g int, rng *rand.Rand, ready func()) {
	var owned [crashOwnedStreams]int64
	for k := range owned {
		evs, err := e.ReadStream(ctx, ownedStream(g, k), verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
		switch {
		case verity.KindOf(err) == verity.NotFound:
			owned[k] = -1
		case err != nil:
			out.line("E %d.%d.- read stream: %v", round, g, err)
			os.Exit(2)
		default:
			owned[k] = int64(evs[0].Revision)
		}
	}
	ready()
	newIDs := func() []uuid.UUID {
		ids := make([]uuid.UUID, 1+rng.Intn(10))
		for i := range ids {
			ids[i] = uuid.New()
		}
		return ids
	}
	expect := func(k int) verity.ExpectedRevision {
		if owned[k] < 0 {
			return verity.NoStream()
		}
		return verity.Exact(uint64(owned[k]))
	}
	for n := range crashMaxAppends {
		tag := fmt.Sprintf("%d.%d.%d", round, g, n)
		var parts []crashPart
		var apps []verity.StreamAppend
		ownedK := -1
		add := func(stream string, exp verity.ExpectedRevision) {
			p := crashPart{stream: stream, ids: newIDs()}
			a := verity.StreamAppend{Stream: stream, Expected: exp}
			for _, id := range p.ids {
				a.Events = append(a.Events, crashEvent(id))
			}
			parts, apps = append(parts, p), append(apps, a)
		}
		switch x := rng.Intn(10); {
		case x < 5:
			ownedK = rng.Intn(crashOwnedStreams)
			add(ownedStream(g, ownedK), expect(ownedK))
		case x < 7:
			add(sharedStream(rng.Intn(crashSharedStreams)), verity.Any())
		default:
			ownedK = rng.Intn(crashOwnedStreams)
			add(ownedStream(g, ownedK), expect(ownedK))
			first := rng.Intn(crashSharedStreams)
			add(sharedStream(first), verity.Any())
			if rng.Intn(2) == 0 {
				add(sharedStream((first+1+rng.Intn(crashSharedStreams-1))%crashSharedStreams), verity.Any())
			}
		}
		out.line("I %s %s", tag, formatParts(parts))
		var res []verity.AppendResult
		var err error
		if len(apps) == 1 {
			var r verity.AppendResult
			r, err = e.Append(ctx, apps[0].Stream, apps[0].Expected, apps[0].Events...)
			res = []verity.AppendResult{r}
		} else {
			res, err = e.AppendMulti(ctx, apps...)
		}
		if err != nil {
			out.line("E %s %v", tag, err)
			os.Exit(2)
		}
		if ownedK >= 0 {
			owned[ownedK] = int64(res[0].Revision)
		}
		out.line("A %s %s", tag, formatResults(res))
	}
}

// crashIntent is one append the child was about to make.
type crashIntent struct {
	tag   string
	round int
	parts []crashPart
	acked bool
	res   []verity.AppendResult
}

func (in *crashIntent) ids() []uuid.UUID {
	var ids []uuid.UUID
	for _, p := range in.parts {
		ids = append(ids, p.ids...)
	}
	return ids
}

// crashModel is what the parent knows of the store: every append ever attempted, which
// were acknowledged, and which unacknowledged ones recovery found absent.
type crashModel struct {
	intents []*crashIntent
	byTag   map[string]*crashIntent
	// stream of every id ever attempted.
	streamOf map[uuid.UUID]string
	// gone: ids of unacknowledged appends found absent and not attempted again since;
	// they must stay absent.
	gone map[uuid.UUID]bool

	acked, unackedPresent, unackedAbsent, retries int
}

func newCrashModel() *crashModel {
	return &crashModel{byTag: map[string]*crashIntent{}, streamOf: map[uuid.UUID]string{}, gone: map[uuid.UUID]bool{}}
}

// absorb records a round's lines. Lines are whole (the parent drops a cut last line).
func (m *crashModel) absorb(t testing.TB, round int, lines []string) {
	t.Helper()
	for _, l := range lines {
		kind, rest, _ := strings.Cut(l, " ")
		tag, arg, _ := strings.Cut(rest, " ")
		switch kind {
		case "R":
		case "I":
			parts, err := parseParts(arg)
			if err != nil {
				t.Fatalf("round %d: child line %q: %v", round, l, err)
			}
			in := &crashIntent{tag: tag, round: round, parts: parts}
			m.intents = append(m.intents, in)
			m.byTag[tag] = in
			for _, p := range parts {
				for _, id := range p.ids {
					if s, ok := m.streamOf[id]; ok && s != p.stream {
						t.Fatalf("round %d: id %s attempted on streams %q and %q", round, id, s, p.stream)
					}
					m.streamOf[id] = p.stream
					delete(m.gone, id)
				}
			}
			if strings.HasPrefix(tag, "r") {
				m.retries++
			}
		case "A":
			in := m.byTag[tag]
			if in == nil {
				t.Fatalf("round %d: acknowledgement without intent: %q", round, l)
			}
			res, err := parseResults(arg)
			if err != nil || len(res) != len(in.parts) {
				t.Fatalf("round %d: child line %q: %d results for %d streams (%v)", round, l, len(res), len(in.parts), err)
			}
			in.acked, in.res = true, res
			m.acked++
		case "E":
			t.Fatalf("round %d: the child's append failed: %s", round, rest)
		default:
			t.Fatalf("round %d: unexpected child line %q", round, l)
		}
	}
}

// check opens the store (recovering it), compares it with the model, closes it and runs
// Verify.
func (m *crashModel) check(t testing.TB, dir string, round int, small bool, rng *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	e, err := Open(crashConfig(dir, small))
	if err != nil {
		t.Fatalf("round %d: open after kill: %v", round, err)
	}
	defer e.Close()
	all := readAllEvents(t, e)
	last := e.Stats().LastPosition
	if uint64(len(all)) != last {
		t.Fatalf("round %d: ReadAll returned %d events, last position is %d", round, len(all), last)
	}
	byID := make(map[uuid.UUID]*verity.RecordedEvent, len(all))
	nextRev := map[string]uint64{}
	for i := range all {
		ev := &all[i]
		if ev.Position != uint64(i+1) {
			t.Fatalf("round %d: event %d of the log has position %d: positions must be gapless from 1", round, i, ev.Position)
		}
		stream, ok := m.streamOf[ev.ID]
		if !ok {
			t.Fatalf("round %d: position %d holds event %s, which no append carried", round, ev.Position, ev.ID)
		}
		if byID[ev.ID] != nil {
			t.Fatalf("round %d: event %s is in the log twice (positions %d and %d)", round, ev.ID, byID[ev.ID].Position, ev.Position)
		}
		byID[ev.ID] = ev
		if m.gone[ev.ID] {
			t.Fatalf("round %d: event %s of an unacknowledged append was absent after an earlier recovery and is now back at position %d", round, ev.ID, ev.Position)
		}
		if ev.Stream != stream {
			t.Fatalf("round %d: position %d: event %s is in stream %q, was appended to %q", round, ev.Position, ev.ID, ev.Stream, stream)
		}
		want := crashEvent(ev.ID)
		if ev.Type != want.Type || ev.ContentType != verity.ContentTypeJSON || !bytes.Equal(ev.Data, want.Data) || !bytes.Equal(ev.Metadata, want.Metadata) {
			t.Fatalf("round %d: position %d: event %s reads back as type %q content type %q data %d bytes metadata %q; want type %q data %d bytes metadata %q",
				round, ev.Position, ev.ID, ev.Type, ev.ContentType, len(ev.Data), ev.Metadata, want.Type, len(want.Data), want.Metadata)
		}
		if ev.Revision != nextRev[ev.Stream] {
			t.Fatalf("round %d: position %d: stream %q has revision %d, want %d: revisions must be gapless and follow positions", round, ev.Position, ev.Stream, ev.Revision, nextRev[ev.Stream])
		}
		nextRev[ev.Stream]++
	}
	for _, in := range m.intents {
		ids := in.ids()
		present := 0
		for _, id := range ids {
			if byID[id] != nil {
				present++
			}
		}
		if present != 0 && present != len(ids) {
			t.Fatalf("round %d: append %s (acknowledged %v) is partly present after recovery: %d of its %d events", round, in.tag, in.acked, present, len(ids))
		}
		if present == 0 {
			if in.acked {
				t.Fatalf("round %d: acknowledged append %s (results %s) is missing after recovery", round, in.tag, formatResults(in.res))
			}
			if in.round == round {
				m.unackedAbsent++
				for _, id := range ids {
					m.gone[id] = true
				}
			}
			continue
		}
		if !in.acked && in.round == round {
			m.unackedPresent++
		}
		// One append's events are consecutive in the log, in order, stream after stream.
		pos := byID[ids[0]].Position
		for i, p := range in.parts {
			for j, id := range p.ids {
				ev := byID[id]
				if ev.Position != pos {
					t.Fatalf("round %d: append %s: event %s is at position %d, want %d (an append's events are consecutive)", round, in.tag, id, ev.Position, pos)
				}
				if j > 0 && ev.Revision != byID[p.ids[j-1]].Revision+1 {
					t.Fatalf("round %d: append %s: event %s has revision %d after %d", round, in.tag, id, ev.Revision, byID[p.ids[j-1]].Revision)
				}
				pos++
			}
			if in.acked {
				lastEv := byID[p.ids[len(p.ids)-1]]
				if got := (verity.AppendResult{Revision: lastEv.Revision, Position: lastEv.Position}); got != in.res[i] {
					t.Fatalf("round %d: acknowledged append %s: stream %q ends at revision %d position %d, acknowledged as %s", round, in.tag, p.stream, got.Revision, got.Position, formatResults(in.res))
				}
			}
		}
	}
	// The stream index, rebuilt or reloaded by recovery, agrees with the log.
	streams := make([]string, 0, len(nextRev))
	for s := range nextRev {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		evs, err := e.ReadStream(ctx, s, verity.ReadStreamOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Revision != nextRev[s]-1 {
			t.Fatalf("round %d: last event of stream %q: got %v (err %v), want revision %d", round, s, evs, err, nextRev[s]-1)
		}
	}
	for range 2 {
		s := streams[rng.Intn(len(streams))]
		var evs []verity.RecordedEvent
		for {
			page, err := e.ReadStream(ctx, s, verity.ReadStreamOptions{From: uint64(len(evs)), Limit: 1000})
			if err != nil {
				t.Fatalf("round %d: read stream %q from %d: %v", round, s, len(evs), err)
			}
			evs = append(evs, page...)
			if len(page) < 1000 {
				break
			}
		}
		if uint64(len(evs)) != nextRev[s] {
			t.Fatalf("round %d: stream %q reads back %d events, the log holds %d", round, s, len(evs), nextRev[s])
		}
		for _, ev := range evs {
			if w := byID[ev.ID]; w == nil || w.Position != ev.Position || w.Revision != ev.Revision {
				t.Fatalf("round %d: stream %q revision %d: event %s at position %d does not match the log", round, s, ev.Revision, ev.ID, ev.Position)
			}
		}
	}
	if err := e.Close(); err != nil {
		t.Fatalf("round %d: close: %v", round, err)
	}
	res, err := Verify(ctx, dir)
	if err != nil {
		t.Fatalf("round %d: verify: %v", round, err)
	}
	if !res.OK || res.LastPosition != last || res.Events != last {
		t.Fatalf("round %d: verify after recovery: %+v, want OK through position %d", round, res, last)
	}
}

// pickRetries chooses appends for the next round to retry with the same ids: this round's
// unacknowledged ones (present or not) and an acknowledged one from any earlier round.
func (m *crashModel) pickRetries(round int, rng *rand.Rand) []*crashIntent {
	var pick []*crashIntent
	var acked []*crashIntent
	for _, in := range m.intents {
		if strings.HasPrefix(in.tag, "r") {
			continue
		}
		if in.round == round && !in.acked && len(pick) < 6 {
			pick = append(pick, in)
		}
		if in.acked {
			acked = append(acked, in)
		}
	}
	if len(acked) > 0 {
		pick = append(pick, acked[rng.Intn(len(acked))])
	}
	return pick
}

func TestCrashRecovery(t *testing.T) {
	rounds := *crashRounds
	if testing.Short() {
		rounds = min(rounds, 5)
	}
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	m := newCrashModel()
	var retries []*crashIntent
	smallRounds := 0
	for round := 1; round <= rounds; round++ {
		small := rng.Intn(3) == 0
		if small {
			smallRounds++
		}
		lines := runCrashRound(t, dir, round, small, rng.Int63(), retries, 50+time.Duration(rng.Intn(351))*time.Millisecond)
		m.absorb(t, round, lines)
		m.check(t, dir, round, small, rng)
		retries = m.pickRetries(round, rng)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	t.Logf("%d rounds (%d with 1 MiB segments), %d segment files: %d appends acknowledged; unacknowledged ones found present %d, absent %d; %d retries",
		rounds, smallRounds, len(segs), m.acked, m.unackedPresent, m.unackedAbsent, m.retries)
	if m.acked == 0 {
		t.Fatal("no append was acknowledged in any round: the test checked nothing")
	}
}

// runCrashRound starts the child on dir, kills it with SIGKILL killAfter after it reports
// ready, and returns every whole line it wrote.
func runCrashRound(t testing.TB, dir string, round int, small bool, seed int64, retries []*crashIntent, killAfter time.Duration) []string {
	t.Helper()
	env := append(os.Environ(),
		crashChildEnv+"=1",
		crashDirEnv+"="+dir,
		crashRoundEnv+"="+strconv.Itoa(round),
		crashSeedEnv+"="+strconv.FormatInt(seed, 10),
	)
	if small {
		env = append(env, crashSmallEnv+"=1")
	}
	if len(retries) > 0 {
		var b strings.Builder
		for _, in := range retries {
			fmt.Fprintf(&b, "%s %s\n", in.tag, formatParts(in.parts))
		}
		path := filepath.Join(t.TempDir(), "retries")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		env = append(env, crashRetryEnv+"="+path)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan []string, 1)
	go func() {
		var lines []string
		r := bufio.NewReaderSize(stdout, 1<<16)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				break // a last line without its newline was cut by the kill: dropped
			}
			l = strings.TrimSuffix(l, "\n")
			if l == "R" {
				close(ready)
			}
			lines = append(lines, l)
		}
		done <- lines
	}()
	var lines []string
	exited := false
	select {
	case <-ready:
		time.Sleep(killAfter) // the one deliberate sleep: a random moment to kill at
	case lines = <-done:
		exited = true // the child ended (or closed stdout) before it was ready
	case <-time.After(time.Minute):
		t.Errorf("round %d: the child was not ready within a minute", round)
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("round %d: kill: %v", round, err)
	}
	if !exited {
		lines = <-done
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		for _, l := range lines {
			if strings.HasPrefix(l, "E ") {
				t.Fatalf("round %d: the child failed: %s", round, l)
			}
		}
		t.Fatalf("round %d: the child ended by itself (%v) instead of being killed; stderr:\n%s", round, err, stderr.String())
	}
	return lines
}

// readAllEvents reads the whole log forwards, page by page.
func readAllEvents(t testing.TB, e *Engine) []verity.RecordedEvent {
	t.Helper()
	var all []verity.RecordedEvent
	for {
		page, err := e.ReadAll(context.Background(), verity.ReadAllOptions{From: uint64(len(all)) + 1})
		if err != nil {
			t.Fatalf("read all from %d: %v", len(all)+1, err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

// quietConfig is a config for dir whose logs are dropped.
func quietConfig(dir string) Config {
	return Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func openEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func closeEngine(t testing.TB, e *Engine) {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// jsonEvents makes n events of about size bytes of data each.
func jsonEvents(n, size int, typ string) []verity.EventData {
	evs := make([]verity.EventData, n)
	for i := range evs {
		evs[i] = verity.EventData{ID: uuid.New(), Type: typ, Data: []byte(`{"v":"` + strings.Repeat("x", size) + `"}`)}
	}
	return evs
}

// segEntry is an entry of a segment file as found by scanning it.
type segEntry struct {
	off      int64
	size     int
	position uint64
	txnEnd   bool
}

// scanSegmentFile lists the well-formed entries of a segment file from its start, stopping
// at the first that is not (or at the footer of a sealed one).
func scanSegmentFile(t testing.TB, path string) []segEntry {
	t.Helper()
	s, err := openSegment(path)
	if err != nil {
		t.Fatalf("open segment: %v", err)
	}
	defer s.f.Close()
	end := s.size
	if s.sealed {
		end = s.tableOff
	}
	sc := &scanner{r: s.f, off: segHeaderSize, end: end, maxBody: 64 << 20}
	var out []segEntry
	for {
		var en entry
		off, err := sc.next(&en)
		if err != nil {
			return out
		}
		out = append(out, segEntry{off: off, size: en.size, position: en.position, txnEnd: en.flags&flagTxnEnd != 0})
	}
}

func lastSegment(t testing.TB, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no segment files in %s (%v)", dir, err)
	}
	sort.Strings(names)
	return names[len(names)-1]
}

// copyDir copies a data directory (flat subdirectories of files).
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

func modifyFile(t testing.TB, path string, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sameEvents(t testing.TB, got, want []verity.RecordedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the log holds %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Stream != w.Stream || g.Revision != w.Revision || g.Position != w.Position || g.Type != w.Type ||
			!bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Metadata, w.Metadata) || !g.Created.Equal(w.Created) {
			t.Fatalf("position %d reads back as %s %q rev %d pos %d; want %s %q rev %d pos %d", w.Position, g.ID, g.Stream, g.Revision, g.Position, w.ID, w.Stream, w.Revision, w.Position)
		}
	}
}

func TestRecoveryCutsDamagedTail(t *testing.T) {
	ctx := context.Background()
	pristine := t.TempDir()
	e := openEngine(t, quietConfig(pristine))
	mustAppend := func(stream string, evs ...verity.EventData) {
		if _, err := e.Append(ctx, stream, verity.Any(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend("order-1", jsonEvents(1, 10, "Placed")...)
	mustAppend("order-2", jsonEvents(3, 3000, "Placed")...)
	if _, err := e.AppendMulti(ctx,
		verity.StreamAppend{Stream: "order-1", Events: jsonEvents(2, 50, "Paid")},
		verity.StreamAppend{Stream: "stock-9", Events: jsonEvents(2, 50, "Reserved")}); err != nil {
		t.Fatal(err)
	}
	mustAppend("order-3", jsonEvents(2, 100, "Placed")...)
	// The append that the damage hits: three events, the middle one large.
	last := jsonEvents(3, 100, "Shipped")
	last[1].Data = []byte(`{"v":"` + strings.Repeat("y", 5000) + `"}`)
	mustAppend("order-4", last...)
	all := readAllEvents(t, e)
	closeEngine(t, e)
	seg := lastSegment(t, pristine)
	entries := scanSegmentFile(t, seg)
	if len(entries) != len(all) {
		t.Fatalf("scan found %d entries, the log holds %d events", len(entries), len(all))
	}
	n := len(all)
	beforeLast := all[:n-3]

	tests := []struct {
		name   string
		damage func(b []byte) []byte
		// keep is what recovery must keep.
		keep []verity.RecordedEvent
	}{
		{"a write cut in the middle of the last entry loses the whole last append", func(b []byte) []byte {
			return b[:entries[n-1].off+int64(entries[n-1].size)/2]
		}, beforeLast},
		{"a write cut in the middle of a large entry loses the whole last append", func(b []byte) []byte {
			return b[:entries[n-2].off+100]
		}, beforeLast},
		{"an append cut at an entry boundary before its end marker is removed", func(b []byte) []byte {
			return b[:entries[n-1].off]
		}, beforeLast},
		{"a cut inside the header of the last entry loses the whole last append", func(b []byte) []byte {
			return b[:entries[n-1].off+5]
		}, beforeLast},
		{"garbage over the last entry loses the whole last append", func(b []byte) []byte {
			r := rand.New(rand.NewSource(1))
			for i := entries[n-1].off; i < int64(len(b)); i++ {
				b[i] = byte(r.Intn(256))
			}
			return b
		}, beforeLast},
		{"one flipped bit in the last entry loses the whole last append", func(b []byte) []byte {
			b[entries[n-1].off+int64(entries[n-1].size)-3] ^= 0x10
			return b
		}, beforeLast},
		{"zero bytes after the last entry change nothing", func(b []byte) []byte {
			return append(b, make([]byte, 4096)...)
		}, all},
		{"a few zero bytes after the last entry change nothing", func(b []byte) []byte {
			return append(b, make([]byte, 7)...)
		}, all},
		{"the start of an entry after the last one changes nothing", func(b []byte) []byte {
			return append(b, b[entries[0].off:entries[0].off+int64(entries[0].size)-1]...)
		}, all},
		{"a whole entry repeated after the last one changes nothing", func(b []byte) []byte {
			return append(b, b[entries[n-1].off:entries[n-1].off+int64(entries[n-1].size)]...)
		}, all},
		{"everything after the segment header cut leaves an empty log", func(b []byte) []byte {
			return b[:segHeaderSize]
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			modifyFile(t, filepath.Join(dir, "log", filepath.Base(seg)), tt.damage)
			if len(tt.keep) > 0 && len(tt.keep) < len(all) {
				// Verify, before recovery, sees the damage past what is kept.
				res, err := Verify(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				if res.OK || res.FirstBadPosition <= uint64(len(tt.keep)) || res.FirstBadPosition > uint64(n) {
					t.Fatalf("verify before recovery: %+v; want a problem at a position in (%d, %d]", res, len(tt.keep), n)
				}
			}
			e := openEngine(t, quietConfig(dir))
			sameEvents(t, readAllEvents(t, e), tt.keep)
			if got := e.Stats().LastPosition; got != uint64(len(tt.keep)) {
				t.Fatalf("last position after recovery %d, want %d", got, len(tt.keep))
			}
			st, err := os.Stat(filepath.Join(dir, "log", filepath.Base(seg)))
			if err != nil {
				t.Fatal(err)
			}
			wantSize := int64(segHeaderSize)
			if len(tt.keep) > 0 {
				k := entries[len(tt.keep)-1]
				wantSize = k.off + int64(k.size)
			}
			if st.Size() != wantSize {
				t.Fatalf("segment is %d bytes after recovery, want %d (cut after the last whole append)", st.Size(), wantSize)
			}
			// The log goes on from the cut: next position, next revision, chain intact.
			res, err := e.Append(ctx, "order-4", verity.Any(), jsonEvents(2, 20, "Again")...)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(len(tt.keep)) + 2; res.Position != want {
				t.Fatalf("append after recovery at position %d, want %d", res.Position, want)
			}
			wantRev := uint64(1)
			if len(tt.keep) == len(all) {
				wantRev = 4
			}
			if res.Revision != wantRev {
				t.Fatalf("append after recovery at revision %d, want %d", res.Revision, wantRev)
			}
			closeEngine(t, e)
			vr, err := Verify(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if !vr.OK || vr.LastPosition != res.Position {
				t.Fatalf("verify after recovery and one more append: %+v, want OK through %d", vr, res.Position)
			}
		})
	}
}

func TestVerifyNamesChangedEvent(t *testing.T) {
	ctx := context.Background()
	pristine := t.TempDir()
	cfg := quietConfig(pristine)
	cfg.SegmentSize, cfg.MaxEventSize, cfg.MaxAppendSize = 1<<20, 64<<10, 256<<10
	e := openEngine(t, cfg)
	// About 2.4 MiB in appends of 4 events: at least two sealed segments.
	for i := range 75 {
		if _, err := e.Append(ctx, fmt.Sprintf("order-%d", i%7), verity.Any(), jsonEvents(4, 8000, "Placed")...); err != nil {
			t.Fatal(err)
		}
	}
	closeEngine(t, e)
	res, err := Verify(ctx, pristine)
	if err != nil || !res.OK {
		t.Fatalf("verify of the untouched store: %+v %v", res, err)
	}
	head := res.Head
	first := filepath.Join(pristine, "log", segmentName(1))
	if s, err := openSegment(first); err != nil || !s.sealed {
		t.Fatalf("segment 1 is not sealed (%v): the test needs a sealed segment", err)
	} else {
		s.f.Close()
	}
	entries := scanSegmentFile(t, first)
	if len(entries) < 20 {
		t.Fatalf("segment 1 holds %d entries, want at least 20", len(entries))
	}
	target := entries[17] // the second event of an append of four
	if target.position != 18 {
		t.Fatalf("entry 17 of segment 1 has position %d", target.position)
	}
	dataAt := target.off + int64(target.size) - 500 // inside the event's data
	rewriteCRC := func(b []byte, en segEntry) {
		body := b[en.off+entryHeaderSize : en.off+int64(en.size)]
		binary.LittleEndian.PutUint32(b[en.off+4:], crc32.Checksum(body, castagnoli))
	}

	tests := []struct {
		name    string
		tamper  func(b []byte)
		wantPos uint64
		problem string
	}{
		{"a flipped byte in an old event's data fails its checksum", func(b []byte) {
			b[dataAt] ^= 0x01
		}, 18, "checksum"},
		{"a changed event with a recomputed checksum breaks the hash chain at that event", func(b []byte) {
			b[dataAt] = 'z'
			rewriteCRC(b, target)
		}, 18, "hash chain"},
		{"a changed commit time with a recomputed checksum breaks the hash chain at that event", func(b []byte) {
			b[target.off+entryHeaderSize+20]++
			rewriteCRC(b, target)
		}, 18, "hash chain"},
		{"a changed event with its own chain value recomputed breaks the chain at the next event", func(b []byte) {
			b[dataAt] = 'z'
			var en entry
			if err := decodeEntry(b[target.off:], 64<<20, &en); err == nil {
				t.Fatal("the tampered entry still decodes before its checksum is fixed")
			}
			rewriteCRC(b, target)
			if err := decodeEntry(b[target.off:], 64<<20, &en); err != nil {
				t.Fatal(err)
			}
			var prev entry
			p := entries[16]
			if err := decodeEntry(b[p.off:], 64<<20, &prev); err != nil {
				t.Fatal(err)
			}
			h := en.hashContent()
			chain := chainNext(&prev.chain, en.meta(), &h)
			copy(b[target.off+entryHeaderSize+28:], chain[:])
			rewriteCRC(b, target)
		}, 19, "hash chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			modifyFile(t, filepath.Join(dir, "log", segmentName(1)), func(b []byte) []byte {
				tt.tamper(b)
				return b
			})
			res, err := Verify(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.FirstBadPosition != tt.wantPos || !strings.Contains(res.Problem, tt.problem) {
				t.Fatalf("verify: %+v; want not OK, first bad position %d, problem mentioning %q", res, tt.wantPos, tt.problem)
			}
			if res.Head == head {
				t.Fatalf("verify reports the untouched store's head %s for a changed store", head)
			}
		})
	}
}

// A crash while a segment file is being created (in roll, or in Open when the last
// segment is sealed) leaves the new file's header under its temporary name, whole or in
// part, or the whole header under the final name. Nothing in it was ever acknowledged:
// recovery must open the store with every event and go on appending.
func TestRecoveryAfterCrashWhileCreatingSegment(t *testing.T) {
	ctx := context.Background()
	pristine := t.TempDir()
	cfg := quietConfig(pristine)
	cfg.SegmentSize, cfg.MaxEventSize, cfg.MaxAppendSize = 1<<20, 64<<10, 256<<10
	e := openEngine(t, cfg)
	for i := range 40 {
		if _, err := e.Append(ctx, fmt.Sprintf("order-%d", i%3), verity.Any(), jsonEvents(4, 8000, "Placed")...); err != nil {
			t.Fatal(err)
		}
	}
	want := readAllEvents(t, e)
	closeEngine(t, e)
	// Simulate the crash: seal the active segment as roll would have, then the next file,
	// created but with no or part of its header.
	last := lastSegment(t, pristine)
	s, err := openSegment(last)
	if err != nil {
		t.Fatal(err)
	}
	offs := scanSegmentFile(t, last)
	var table []uint32
	for _, en := range offs {
		table = append(table, uint32(en.off))
	}
	if _, err := s.f.WriteAt(encodeFooter(s.firstPos, table), s.size); err != nil {
		t.Fatal(err)
	}
	var lastEn entry
	if err := s.readEntryAt(offs[len(offs)-1].off, 64<<20, &lastEn); err != nil {
		t.Fatal(err)
	}
	s.f.Close()
	next := filepath.Join(pristine, "log", segmentName(s.num+1))
	tests := []struct {
		name string
		file string
		n    int
	}{
		{"an empty temporary segment file is removed", filepath.Base(next) + ".tmp", 0},
		{"a temporary segment file with part of its header is removed", filepath.Base(next) + ".tmp", 20},
		{"a temporary segment file with its whole header is removed", filepath.Base(next) + ".tmp", segHeaderSize},
		{"a renamed segment file with its header and no entries is taken", filepath.Base(next), segHeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			hdr := encodeSegHeader(s.num+1, s.firstPos+uint64(len(table)), lastEn.chain)
			if err := os.WriteFile(filepath.Join(dir, "log", tt.file), hdr[:tt.n], 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := Open(quietConfig(dir))
			if err != nil {
				t.Fatalf("open after a crash while creating a segment: %v", err)
			}
			defer e.Close()
			sameEvents(t, readAllEvents(t, e), want)
			if _, err := e.Append(ctx, "order-0", verity.Any(), jsonEvents(1, 10, "After")...); err != nil {
				t.Fatal(err)
			}
			closeEngine(t, e)
			if res, err := Verify(ctx, dir); err != nil || !res.OK {
				t.Fatalf("verify: %+v %v", res, err)
			}
		})
	}
}

// Limits apply to new appends; events already acknowledged must survive a reopen with a
// smaller MaxEventSize.
func TestReopenWithSmallerMaxEventSizeKeepsEvents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openEngine(t, quietConfig(dir))
	if _, err := e.Append(ctx, "doc-1", verity.Any(), jsonEvents(1, 10, "Small")...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Append(ctx, "doc-1", verity.Any(), jsonEvents(1, 200<<10, "Large")...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Append(ctx, "doc-1", verity.Any(), jsonEvents(1, 10, "Small")...); err != nil {
		t.Fatal(err)
	}
	want := readAllEvents(t, e)
	closeEngine(t, e)
	cfg := quietConfig(dir)
	cfg.MaxEventSize = 64 << 10
	e = openEngine(t, cfg)
	got := readAllEvents(t, e)
	if len(got) != len(want) {
		t.Fatalf("after reopening with MaxEventSize 64 KiB the log holds %d events, want %d: recovery cut acknowledged events", len(got), len(want))
	}
	sameEvents(t, got, want)
}
