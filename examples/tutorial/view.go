package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk"
	"github.com/verity-dev/verity/sdk/projection"
)

// Step 5: a SQL view of accounts and transfers, kept by a projection. Each event is
// applied in the same SQL transaction as the projection's checkpoint: exactly once.

// ViewFilter selects the events the view needs.
var ViewFilter = verity.Filter{Categories: []string{"account", "transfer"}}

// BankView is the projection. {accounts} and {transfers} stand for the tables' names.
func BankView(reg *sdk.Registry) projection.Projection {
	return projection.Projection{
		Name: "bank",
		Tables: []projection.Table{
			{Name: "accounts", Create: []string{
				`CREATE TABLE {accounts} (id TEXT PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL)`,
			}},
			{Name: "transfers", Create: []string{
				`CREATE TABLE {transfers} (id TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
					amount INTEGER NOT NULL, status TEXT NOT NULL)`,
			}},
		},
		Handle: func(ctx context.Context, tx projection.Tx, rec verity.RecordedEvent) error {
			e, err := reg.Decode(rec)
			if err != nil {
				return err
			}
			id := rec.Stream[strings.IndexByte(rec.Stream, '-')+1:]
			switch d := e.Data.(type) {
			case AccountOpened:
				return tx.Exec(ctx, `INSERT INTO {accounts} (id, owner, balance) VALUES ($1, $2, 0)`, id, d.Owner)
			case MoneyDeposited:
				return tx.Exec(ctx, `UPDATE {accounts} SET balance = balance + $1 WHERE id = $2`, d.Amount, id)
			case MoneyWithdrawn:
				return tx.Exec(ctx, `UPDATE {accounts} SET balance = balance - $1 WHERE id = $2`, d.Amount, id)
			case TransferRequested:
				return tx.Exec(ctx, `INSERT INTO {transfers} (id, source, target, amount, status) VALUES ($1, $2, $3, $4, 'requested')`,
					id, d.From, d.To, d.Amount)
			case TransferCompleted:
				return tx.Exec(ctx, `UPDATE {transfers} SET status = 'completed' WHERE id = $1`, id)
			case TransferFailed:
				return tx.Exec(ctx, `UPDATE {transfers} SET status = $1 WHERE id = $2`, "failed: "+d.Reason, id)
			}
			return nil
		},
	}
}

// Queryer is what printing the view needs of a database: sqlite.Target and
// postgres.Target both have it.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (projection.Rows, error)
}

// PrintView writes the view's tables.
func PrintView(ctx context.Context, db Queryer, w io.Writer) error {
	rows, err := db.Query(ctx, `SELECT id, owner, balance FROM accounts ORDER BY id`)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "accounts")
	for rows.Next() {
		var id, owner string
		var balance int
		if err := rows.Scan(&id, &owner, &balance); err != nil {
			rows.Close()
			return err
		}
		fmt.Fprintf(w, "  %-6s %-6s %6d\n", id, owner, balance)
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	rows, err = db.Query(ctx, `SELECT id, source, target, amount, status FROM transfers ORDER BY id`)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "transfers")
	for rows.Next() {
		var id, from, to, status string
		var amount int
		if err := rows.Scan(&id, &from, &to, &amount, &status); err != nil {
			rows.Close()
			return err
		}
		fmt.Fprintf(w, "  %-3s %s -> %-6s %6d  %s\n", id, from, to, amount, status)
	}
	return closeRows(rows)
}

func closeRows(rows projection.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// pendingTransfers counts the transfers the view shows as not finished yet.
func pendingTransfers(ctx context.Context, db Queryer) (int, error) {
	rows, err := db.Query(ctx, `SELECT count(*) FROM transfers WHERE status = 'requested'`)
	if err != nil {
		return 0, err
	}
	n := 0
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, err
		}
	}
	return n, closeRows(rows)
}
