package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/verity-dev/verity"
	"github.com/verity-dev/verity/sdk/projection"
)

func TestBuildAsOfBuildsTheTablesUpToAPositionBesideTheLiveOnes(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		ctx := context.Background()
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 10, 500, 5)
		mid := head(t, s) - 37
		appendDeposits(t, s, "noise", 3, 100, 10)
		filter := verity.Filter{Categories: []string{"acct"}}
		p, err := projection.New(s, tg, ledger("ledger"), projection.Config{Filter: filter, BatchSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, p)
		waitCaughtUp(t, p, head(t, s))

		a, err := p.BuildAsOf(ctx, "asof_mid", mid)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Complete || a.Position != mid || a.Tables["accounts"] != "accounts__asof_mid" {
			t.Fatalf("BuildAsOf = %+v, want complete at %d with accounts__asof_mid", a, mid)
		}
		sameView(t, readViewOf(t, tg, "accounts__asof_mid", "categories__asof_mid"), fold(t, s, filter, mid))
		// The live view goes on and is whole.
		appendDeposits(t, s, "acct", 4, 40, 4)
		waitCaughtUp(t, p, head(t, s))
		stop()
		sameView(t, readView(t, tg), fold(t, s, filter, 0))
		sameView(t, readViewOf(t, tg, "accounts__asof_mid", "categories__asof_mid"), fold(t, s, filter, mid))

		// Again with the same position: returned as it is; another position: Conflict.
		if again, err := p.BuildAsOf(ctx, "asof_mid", mid); err != nil || !again.Complete {
			t.Fatalf("BuildAsOf again = %+v, %v", again, err)
		}
		if _, err := p.BuildAsOf(ctx, "asof_mid", mid+1); !errors.Is(err, verity.ErrConflict) {
			t.Fatalf("BuildAsOf at another position: %v, want Conflict", err)
		}
		if _, err := p.BuildAsOf(ctx, "too_far", head(t, s)+1); !errors.Is(err, verity.ErrInvalid) {
			t.Fatalf("BuildAsOf beyond the head: %v, want Invalid", err)
		}
		for _, bad := range []string{"", "g2", "rebuild", "a__b", "Upper", "a-b"} {
			if _, err := p.BuildAsOf(ctx, bad, 1); !errors.Is(err, verity.ErrInvalid) {
				t.Errorf("BuildAsOf suffix %q: %v, want Invalid", bad, err)
			}
		}
		list, err := p.AsOfs(ctx)
		if err != nil || len(list) != 1 || list[0].Suffix != "asof_mid" {
			t.Fatalf("AsOfs = %+v, %v; want asof_mid only", list, err)
		}
		// A rebuild swaps the live tables and leaves the as-of build alone.
		if err := p.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		sameView(t, readViewOf(t, tg, "accounts__asof_mid", "categories__asof_mid"), fold(t, s, filter, mid))

		if err := p.DropAsOf(ctx, "asof_mid"); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Query(ctx, "SELECT 1 FROM accounts__asof_mid"); err == nil {
			t.Error("accounts__asof_mid still exists after DropAsOf")
		}
		if err := p.DropAsOf(ctx, "asof_mid"); !errors.Is(err, verity.ErrNotFound) {
			t.Errorf("DropAsOf twice: %v, want NotFound", err)
		}
		if list, _ := p.AsOfs(ctx); len(list) != 0 {
			t.Errorf("AsOfs after DropAsOf = %+v", list)
		}
	})
}

func TestBuildAsOfOfOneStreamStopsAtThePosition(t *testing.T) {
	forEachTarget(t, func(t *testing.T, kind targetKind) {
		ctx := context.Background()
		s := openStore(t, t.TempDir())
		defer s.Close()
		tg := kind.open(t, kind.fresh(t))
		defer tg.Close()
		appendDeposits(t, s, "acct", 2, 40, 1) // acct-0 and acct-1 in turn
		p, err := projection.New(s, tg, ledger("one"), projection.Config{Stream: "acct-1"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.BuildAsOf(ctx, "asof_10", 10)
		if err != nil || !a.Complete {
			t.Fatalf("BuildAsOf = %+v, %v", a, err)
		}
		got := readViewOf(t, tg, "accounts__asof_10", "categories__asof_10")
		// acct-1 holds the even positions: 2, 4, ..., 10 with amounts 2, 4, ..., 10.
		if want := [2]int64{2 + 4 + 6 + 8 + 10, 5}; got.accounts["acct-1"] != want || len(got.accounts) != 1 {
			t.Fatalf("as-of view %v, want acct-1 %v only", got.accounts, want)
		}
	})
}
