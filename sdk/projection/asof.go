package projection

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/verity-dev/verity"
)

// asOfSep joins a projection's name and an as-of build's suffix into the build's
// checkpoint key (name@suffix); rebuildSuffix is one such key, reserved.
const asOfSep = "@"

var asOfSuffixRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,23}$`)
var generationRE = regexp.MustCompile(`^g[0-9]+$`)

// AsOf is a build of a projection's tables as of a log position, in tables of their own
// (table__suffix) that the projection's Run and Rebuild never touch.
type AsOf struct {
	Suffix string
	// Until is the position the build stops at: it applies every event of the source at
	// or below it, and none above.
	Until uint64
	// Position is how far the build has got; it equals Until once Complete.
	Position uint64
	// Complete says the build has reached Until; an interrupted build resumes when
	// BuildAsOf is called again with the same suffix and position.
	Complete bool
	// Tables maps each table's name to the name of its as-of copy.
	Tables map[string]string
}

// validAsOfSuffix checks suffix: table__suffix must differ from the names of rebuild
// generations (table__gN) and of the other builds.
func validAsOfSuffix(name, suffix string) error {
	if !asOfSuffixRE.MatchString(suffix) || containsDoubleUnderscore(suffix) || generationRE.MatchString(suffix) || asOfSep+suffix == rebuildSuffix {
		return verity.Errorf(verity.Invalid, op, "projection %q: as-of suffix %q: want 1 to 24 of a-z, 0-9 and _, starting with a letter, without __, and neither gN nor rebuild", name, suffix)
	}
	return nil
}

// BuildAsOf builds the projection's tables as they were when the log's head was at
// position until: it applies the source's events up to and including position until, from
// the start, into tables named table__suffix ({table} in the handler's SQL names them),
// and stops there. Their checkpoint row (name@suffix) keeps the progress, so that a build
// interrupted (ctx, crash) resumes when called again; a complete build is returned as it
// is. The live tables, Run and Rebuild are not affected. Errors: Invalid (a bad suffix,
// until beyond the head of the log), Conflict (suffix already used for another position).
func (p *Projector) BuildAsOf(ctx context.Context, suffix string, until uint64) (AsOf, error) {
	if err := validAsOfSuffix(p.proj.Name, suffix); err != nil {
		return AsOf{}, err
	}
	p.asOfMu.Lock()
	defer p.asOfMu.Unlock()
	if err := p.Setup(ctx); err != nil {
		return AsOf{}, err
	}
	head, err := p.logHead(ctx)
	if err != nil {
		return AsOf{}, err
	}
	if until > head {
		return AsOf{}, verity.Errorf(verity.Invalid, op, "projection %q: as-of position %d is beyond the head of the log, %d", p.proj.Name, until, head)
	}
	key := p.proj.Name + asOfSep + suffix
	// An as-of build's checkpoint row keeps the position it is built up to in its
	// generation column: as-of tables have no generations, and apply's compare-and-set
	// then also checks that the row is still the build's.
	v, found, err := p.load(ctx, key)
	if err != nil {
		return AsOf{}, err
	}
	if found && v.gen != int64(until) {
		return AsOf{}, verity.Errorf(verity.Conflict, op, "projection %q: as-of build %q exists for position %d, not %d: drop it first", p.proj.Name, suffix, v.gen, until)
	}
	if !found {
		v = p.newView(key, int64(until), checkpoint{})
		if err := p.create(ctx, v); err != nil {
			return AsOf{}, err
		}
	}
	to := checkpoint{pos: until}
	if p.cfg.Stream != "" {
		if to.rev, err = p.revisionAt(ctx, until); err != nil {
			return AsOf{}, err
		}
	}
	for v.at != to {
		batch, next, last, err := p.readBatch(ctx, v.at, to)
		if err != nil {
			return AsOf{}, err
		}
		if last {
			next = to
		}
		if err := p.apply(ctx, v, batch, next, nil); err != nil {
			return AsOf{}, err
		}
	}
	return p.asOf(v), nil
}

func (p *Projector) asOf(v *view) AsOf {
	a := AsOf{Suffix: strings.TrimPrefix(v.key, p.proj.Name+asOfSep), Until: uint64(v.gen), Position: v.at.pos, Tables: map[string]string{}}
	a.Complete = a.Position == a.Until
	for k, n := range v.names {
		a.Tables[k] = n
	}
	return a
}

// AsOfs lists the projection's as-of builds, complete or not, by suffix.
func (p *Projector) AsOfs(ctx context.Context) ([]AsOf, error) {
	if err := p.Setup(ctx); err != nil {
		return nil, err
	}
	rows, err := p.target.Query(ctx, `SELECT name FROM verity_projections`)
	if err != nil {
		return nil, p.wrap("list the as-of builds", err)
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, p.wrap("list the as-of builds", err)
		}
		if strings.HasPrefix(k, p.proj.Name+asOfSep) && k != p.proj.Name+rebuildSuffix {
			keys = append(keys, k)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, p.wrap("list the as-of builds", err)
	}
	slices.Sort(keys)
	var out []AsOf
	for _, k := range keys {
		v, found, err := p.load(ctx, k)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, p.asOf(v))
		}
	}
	return out, nil
}

// DropAsOf drops an as-of build's tables and its checkpoint row, in one transaction.
// Errors: Invalid (a bad suffix), NotFound (no such build).
func (p *Projector) DropAsOf(ctx context.Context, suffix string) error {
	if err := validAsOfSuffix(p.proj.Name, suffix); err != nil {
		return err
	}
	p.asOfMu.Lock()
	defer p.asOfMu.Unlock()
	if err := p.Setup(ctx); err != nil {
		return err
	}
	key := p.proj.Name + asOfSep + suffix
	v, found, err := p.load(ctx, key)
	if err != nil {
		return err
	}
	if !found {
		return verity.Errorf(verity.NotFound, op, "projection %q: no as-of build %q", p.proj.Name, suffix)
	}
	err = p.inTx(ctx, func(tx *handlerTx) error {
		for _, t := range p.proj.Tables {
			if err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+v.names[t.Name]); err != nil {
				return err
			}
		}
		return tx.Exec(ctx, `DELETE FROM verity_projections WHERE name = $1`, key)
	})
	if err != nil {
		return p.wrap("drop as-of build "+suffix, err)
	}
	return nil
}

// logHead returns the position of the last event of the log, 0 when it is empty.
func (p *Projector) logHead(ctx context.Context) (uint64, error) {
	evs, err := p.store.ReadAll(ctx, verity.ReadAllOptions{Direction: verity.Backwards, FromEnd: true, Limit: 1})
	if err != nil {
		return 0, p.wrap("read the head of the log", err)
	}
	if len(evs) == 0 {
		return 0, nil
	}
	return evs[0].Position, nil
}

// revisionAt counts the events of the projection's stream at or below log position pos.
func (p *Projector) revisionAt(ctx context.Context, pos uint64) (uint64, error) {
	var rev uint64
	for {
		evs, err := p.store.ReadStream(ctx, p.cfg.Stream, verity.ReadStreamOptions{From: rev, Limit: 1000})
		if errors.Is(err, verity.ErrNotFound) {
			return rev, nil
		}
		if err != nil {
			return 0, p.wrap("read stream "+p.cfg.Stream, err)
		}
		for _, e := range evs {
			if e.Position > pos {
				return rev, nil
			}
			rev = e.Revision + 1
		}
		if len(evs) < 1000 {
			return rev, nil
		}
	}
}
