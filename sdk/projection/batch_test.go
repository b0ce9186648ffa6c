package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

const (
	addAccount = `INSERT INTO {accounts} (stream, total, n) VALUES ($1, $2, $3)
		ON CONFLICT (stream) DO UPDATE SET total = {accounts}.total + excluded.total, n = {accounts}.n + excluded.n`
	addCategory = `INSERT INTO {categories} (category, n) VALUES ($1, $2)
		ON CONFLICT (category) DO UPDATE SET n = {categories}.n + excluded.n`
)

// ledgerBatch is the ledger's batch handler: it adds up the batch per stream and per
// category and writes each row once.
func ledgerBatch(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
	accounts := map[string][2]int64{}
	categories := map[string]int64{}
	for _, e := range events {
		var d deposit
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("event at %d: %w", e.Position, err)
		}
		a := accounts[e.Stream]
		accounts[e.Stream] = [2]int64{a[0] + d.Amount, a[1] + 1}
		categories[verity.Category(e.Stream)]++
	}
	for _, s := range slices.Sorted(maps.Keys(accounts)) {
		if err := tx.Exec(ctx, addAccount, s, accounts[s][0], accounts[s][1]); err != nil {
			return err
		}
	}
	for _, c := range slices.Sorted(maps.Keys(categories)) {
		if err := tx.Exec(ctx, addCategory, c, categories[c]); err != nil {
			return err
		}
	}
	return nil
}

func batchLedger(name string) projection.Projection {
	p := ledger(name)
	p.Handle, p.HandleBatch = nil, ledgerBatch
	return p
}

func TestABatchHandlerKeepsTheSameViewExactlyOnce(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 50, 1500, 5)
		appendDeposits(t, s, "vip", 3, 90, 3)

		p, err := projection.New(s, tg, batchLedger("batched"), projection.Config{BatchSize: 250})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))

		appendDeposits(t, s, "acct", 7, 20, 1)
		waitCaughtUp(t, p, head(t, s))
		stop()
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))

		// A restart resumes at the checkpoint: nothing is applied twice.
		appendDeposits(t, s, "vip", 5, 100, 10)
		stop = running(t, p)
		waitCaughtUp(t, p, head(t, s))
		stop()
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 0))
	})
}

func TestAFailingBatchHandlerStopsTheProjectionAndNamesTheBatch(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 4, 100, 1)
		if _, err := s.Append(context.Background(), "acct-9", verity.Any(), verity.EventData{Type: "Deposited", Data: []byte(`{"amount":"lots"}`)}); err != nil {
			t.Fatal(err)
		}
		appendDeposits(t, s, "acct", 4, 100, 1)

		p, err := projection.New(s, tg, batchLedger("fails"), projection.Config{BatchSize: 30})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Run(context.Background())
		// Batches of 30 from position 1: the bad event, at 101, is in the one of 91 to 120.
		if !errors.Is(err, verity.ErrInternal) || !strings.Contains(err.Error(), "batch of 30 events at positions 91 to 120") {
			t.Fatalf("Run returned %v, want an Internal error naming the batch of 91 to 120", err)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Position != 90 || st.LastError == nil {
			t.Errorf("status %+v: want position 90 and the last error", st)
		}
		sameView(t, readView(t, tg), fold(t, s, verity.Filter{}, 90))
	})
}

// On PostgreSQL the bad statement fails when its queue is sent: when the handler reads next,
// or after HandleBatch returned, when the checkpoint is written.
func TestAFailingStatementOfABatchHandlerIsReportedAgainstTheBatch(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 4, 40, 1)
		for _, tt := range []struct {
			name     string
			thenRead bool
		}{
			{"when the batch commits", false},
			{"when the handler reads next", true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				proj := batchLedger("bad_sql")
				proj.HandleBatch = func(ctx context.Context, tx projection.Tx, events []verity.RecordedEvent) error {
					if err := ledgerBatch(ctx, tx, events); err != nil {
						return err
					}
					if err := tx.Exec(ctx, `INSERT INTO {accounts} (stream, total, n) VALUES ($1, NULL, 1)`, "nobody"); err != nil || !tt.thenRead {
						return err
					}
					var n int64
					return tx.QueryRow(ctx, `SELECT COUNT(*) FROM {accounts}`).Scan(&n)
				}
				p, err := projection.New(s, tg, proj, projection.Config{BatchSize: 40})
				if err != nil {
					t.Fatal(err)
				}
				err = p.Run(context.Background())
				if err == nil || strings.Count(err.Error(), "batch of 40 events at positions 1 to 40") != 1 {
					t.Fatalf("Run returned %v, want the error of the batch of 1 to 40, named once", err)
				}
				if v := readView(t, tg); len(v.accounts) != 0 {
					t.Errorf("the failed batch left %v", v)
				}
			})
		}
	})
}
