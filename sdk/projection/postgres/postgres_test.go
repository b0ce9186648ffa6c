package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/verity-dev/verity/sdk/projection/postgres"
)

// The projections' own tests (package projection) run against this target; these check
// what is particular to it.

func TestTransactionsCommitWithoutWaitingForTheFlushUnlessAsked(t *testing.T) {
	url := os.Getenv("VERITY_TEST_POSTGRES")
	if url == "" {
		t.Skip("PostgreSQL tests need VERITY_TEST_POSTGRES, e.g. VERITY_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./sdk/projection/...")
	}
	for _, tt := range []struct {
		name string
		opts postgres.Options
		want string
	}{
		{"by default a transaction sets synchronous_commit off", postgres.Options{}, "off"},
		{"with SyncCommit it keeps the server's setting", postgres.Options{SyncCommit: true}, "on"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			tt.opts.Schema = "proj_pg_" + hex.EncodeToString(b)
			tg, err := postgres.Open(ctx, url, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			defer tg.Pool().Exec(context.Background(), "DROP SCHEMA "+tt.opts.Schema+" CASCADE")
			var server string
			if err := tg.Pool().QueryRow(ctx, "SHOW synchronous_commit").Scan(&server); err != nil {
				t.Fatal(err)
			}
			if tt.want == "on" {
				tt.want = server // the server's setting, on in the tests' PostgreSQL
			}
			tx, err := tg.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if err := tx.Exec(ctx, "CREATE TABLE t (n BIGINT)"); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := tx.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("synchronous_commit in the transaction is %q, want %q", got, tt.want)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tg.Pool().QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != server {
				t.Errorf("after the transaction the connection's synchronous_commit is %q, want the server's %q", got, server)
			}
		})
	}
}
