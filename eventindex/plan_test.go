package eventindex

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-dev/verity/sdk/projection/sqlite"
)

// TestHotQueriesReadOnlyWhatTheyReturn checks with EXPLAIN QUERY PLAN that each lookup
// the HTTP API makes per request walks an index in the order it answers: no scan of the
// table, and no sort, which would read every matching row (a correlation can hold
// millions) to return a page of them.
func TestHotQueriesReadOnlyWhatTheyReturn(t *testing.T) {
	target, err := sqlite.Open(filepath.Join(t.TempDir(), "plan.sqlite"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	ctx := context.Background()
	for _, tbl := range tables {
		for _, stmt := range tbl.Create {
			stmt = strings.ReplaceAll(stmt, "{"+tbl.Name+"}", tbl.Name)
			if _, err := target.DB().ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	for name, q := range map[string]string{
		"lookup":     lookupQuery,
		"caused by":  causedByQuery,
		"correlated": correlatedQuery,
		"root":       correlationRootQuery,
	} {
		t.Run(name, func(t *testing.T) {
			rows, err := target.DB().QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, "x", int64(5), int64(10))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(plan, "; ")
			if !strings.Contains(all, "USING") || strings.Contains(all, "SCAN") || strings.Contains(all, "TEMP B-TREE") || strings.Contains(all, "MULTI-INDEX") {
				t.Errorf("plan of %s:\n  %s\nwant one index search, in order, with no scan or sort", q, all)
			}
		})
	}
}
