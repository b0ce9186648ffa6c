package projection_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/engine"
	"github.com/verity-dev/verity/sdk/projection"
)

// crashChildEnv, set to "kind|dsn|store dir", makes the test binary a crash child: it
// appends deposits to the store and projects them, until it is killed.
const crashChildEnv = "VERITY_PROJECTION_CRASH_CHILD"

func TestProjectionIsExactlyOnceAcrossKills(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		storeDir := t.TempDir()
		dsn := kind.fresh(t)
		s := openStore(t, storeDir)
		appendDeposits(t, s, "acct", 100, 3000, 10) // the first rounds are killed in the catch-up
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		watch := kind.open(t, dsn) // reads the children's checkpoint
		defer watch.Close()
		checkpoint := func() uint64 {
			var pos int64
			_ = queryOne(context.Background(), watch, `SELECT position FROM verity_projections WHERE name = 'crash'`, &pos)
			return uint64(pos)
		}
		var positions []uint64
		prev := uint64(0)
		for round := range 5 {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashChildEnv+"="+kind.name+"|"+dsn+"|"+storeDir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Once the child has committed a batch, kill it at a random point: most likely
			// inside a batch's transaction, or between its commit and the next one.
			deadline := time.Now().Add(30 * time.Second)
			for checkpoint() == prev {
				select {
				case err := <-exited:
					t.Fatalf("round %d: the child exited by itself: %v\n%s", round, err, stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the child committed nothing in 30s\n%s", round, stderr.String())
				}
			}
			time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond) // the kill point, not a wait for a condition
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited
			prev = checkpoint()
			positions = append(positions, prev)
		}
		t.Logf("checkpoints after each kill: %v", positions)

		// Restart once more, catch up, and compare with the log.
		s = openStore(t, storeDir)
		defer s.Close()
		tg := kind.open(t, dsn)
		defer tg.Close()
		p, err := projection.New(s, tg, ledger("crash"), projection.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))
		stop()
		got, want := readView(t, tg), fold(t, s, verity.Filter{}, 0)
		sameView(t, got, want)
		var events int64
		for _, n := range want.categories {
			events += n
		}
		t.Logf("%d events in the log, %d in the view's categories", events, got.categories["acct"])
	})
}

// runCrashChild projects the store into the target while appending to the store.
func runCrashChild() {
	kindName, rest, _ := strings.Cut(os.Getenv(crashChildEnv), "|")
	dsn, storeDir, _ := strings.Cut(rest, "|")
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	s, err := engine.Open(engine.Config{Dir: storeDir})
	if err != nil {
		fail(err)
	}
	kind := sqliteKind
	if kindName == postgresKind.name {
		kind = postgresKind
	}
	tb := &childTB{fail: fail}
	tg := kind.open(tb, dsn)
	p, err := projection.New(s, tg, ledger("crash"), projection.Config{BatchSize: 250})
	if err != nil {
		fail(err)
	}
	go func() {
		rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
		for i := 0; ; i++ {
			stream := fmt.Sprintf("acct-%d", rng.IntN(120))
			var evs []verity.EventData
			for range 1 + rng.IntN(20) {
				evs = append(evs, verity.EventData{Type: "Deposited", Data: fmt.Appendf(nil, `{"amount":%d}`, 1+rng.IntN(1000))})
			}
			if _, err := s.Append(context.Background(), stream, verity.Any(), evs...); err != nil {
				fail(err)
			}
		}
	}()
	fail(fmt.Errorf("run: %w", p.Run(context.Background())))
}

// childTB lets the crash child use the tests' helpers that take a testing.TB.
type childTB struct {
	testing.TB
	fail func(error)
}

func (c *childTB) Helper()                      {}
func (c *childTB) Fatal(args ...any)            { c.fail(fmt.Errorf("%s", fmt.Sprint(args...))) }
func (c *childTB) Fatalf(f string, args ...any) { c.fail(fmt.Errorf(f, args...)) }
