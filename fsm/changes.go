package fsm

import (
	"cmp"
	"slices"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
)

// Change names one object that a revision created, changed or deleted.
// Chassis are named by their ID, which is their name; MAC bindings by
// MacBinding.ID (network id, "/", IP address).
type Change struct {
	Table string
	ID    string
}

// Bounds of the change history: whichever is reached first drops the
// oldest revisions.
const (
	maxHistoryRevisions = 16384
	maxHistoryChanges   = 1 << 20
)

// revisionChanges is the changes of one successful command.
type revisionChanges struct {
	rev     uint64
	changes []Change
}

// changeLog is a bounded history of the changes of the latest revisions,
// for consumers (the flow compiler) that recompute only what changed.
// Apply appends under mu while committing, so a reader that sees a
// revision in the state finds its changes here.
type changeLog struct {
	mu sync.RWMutex
	// base is the revision the history starts after: the changes of every
	// revision in (base, last] are known.
	base  uint64
	hist  []revisionChanges
	total int
	// maxRevisions, when set, replaces maxHistoryRevisions (tests make
	// the history short to see consumers fall off its end).
	maxRevisions int
}

// record appends the changes of rev, dropping the oldest revisions when
// over a bound. Callers hold mu.
func (l *changeLog) record(rev uint64, changes []Change) {
	l.hist = append(l.hist, revisionChanges{rev: rev, changes: changes})
	l.total += len(changes)
	maxRevs := maxHistoryRevisions
	if l.maxRevisions > 0 {
		maxRevs = l.maxRevisions
	}
	if len(l.hist) <= maxRevs && l.total <= maxHistoryChanges {
		return
	}
	// Over a bound: drop down to 7/8 of it at once, so the copy (which
	// frees the dropped entries) happens once per many revisions, not on
	// every Apply.
	drop := 0
	for len(l.hist)-drop > 1 && (len(l.hist)-drop > maxRevs*7/8 || l.total > maxHistoryChanges*7/8) {
		l.total -= len(l.hist[drop].changes)
		l.base = l.hist[drop].rev
		drop++
	}
	l.hist = append([]revisionChanges(nil), l.hist[drop:]...)
}

// reset forgets the history: only revisions after base will be known.
// Callers hold mu.
func (l *changeLog) reset(base uint64) {
	l.base, l.hist, l.total = base, nil, 0
}

// between returns the de-duplicated changes of revisions in (from, to], in
// revision order, or ok=false when the history does not reach back to from.
func (l *changeLog) between(from, to uint64) ([]Change, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if from < l.base {
		return nil, false
	}
	last := l.base
	if n := len(l.hist); n > 0 {
		last = l.hist[n-1].rev
	}
	if from > last {
		// Ahead of this state: it was replaced by an older one (restore).
		return nil, false
	}
	var out []Change
	seen := map[Change]bool{}
	for _, rc := range l.hist {
		if rc.rev <= from {
			continue
		}
		if rc.rev > to {
			break
		}
		for _, c := range rc.changes {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, true
}

// page is between limited to about max changes that keep accepts: the
// accepted, de-duplicated changes of revisions in (from, upTo], where upTo
// <= to is the latest revision that keeps them within max (but at least one
// revision, however many changes it has).
func (l *changeLog) page(from, to uint64, max int, keep func(Change) bool) (out []Change, upTo uint64, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if from < l.base {
		return nil, 0, false
	}
	last := l.base
	if n := len(l.hist); n > 0 {
		last = l.hist[n-1].rev
	}
	if from > last {
		return nil, 0, false
	}
	upTo = min(to, last)
	seen := map[Change]bool{}
	start, _ := slices.BinarySearchFunc(l.hist, from+1, func(rc revisionChanges, rev uint64) int {
		return cmp.Compare(rc.rev, rev)
	})
	for _, rc := range l.hist[start:] {
		if rc.rev > to {
			break
		}
		var add []Change
		for _, c := range rc.changes {
			if !seen[c] && keep(c) {
				add = append(add, c)
			}
		}
		if len(out) > 0 && len(out)+len(add) > max {
			// The revision before this one is where the page ends.
			return out, upTo, true
		}
		for _, c := range add {
			seen[c] = true
		}
		out = append(out, add...)
		upTo = rc.rev
	}
	return out, min(to, last), true
}

// trackedChanges turns a transaction's changes into Changes, leaving out
// the internal index table.
func trackedChanges(txn *memdb.Txn) []Change {
	mc := txn.Changes()
	out := make([]Change, 0, len(mc))
	for _, c := range mc {
		if c.Table == tableIndex {
			continue
		}
		obj := c.After
		if obj == nil {
			obj = c.Before
		}
		switch o := obj.(type) {
		case Object:
			out = append(out, Change{Table: c.Table, ID: o.GetMeta().ID})
		case *MacBinding:
			out = append(out, Change{Table: c.Table, ID: o.ID()})
		}
	}
	return out
}

// ChangesSince returns the objects changed by every revision after rev up
// to the current one, de-duplicated, in the order of their first change.
// ok is false when the history does not reach back to rev (it is bounded
// and a restore clears it): the caller must then recompute everything.
//
// Apply may go on meanwhile, so the result can include revisions newer
// than a View the caller read before; ChangesBetween bounds it.
func (f *FSM) ChangesSince(rev uint64) (changes []Change, ok bool) {
	return f.changes.between(rev, ^uint64(0))
}

// ChangesBetween is ChangesSince limited to revisions in (from, to].
func (f *FSM) ChangesBetween(from, to uint64) (changes []Change, ok bool) {
	return f.changes.between(from, to)
}

// ChangesPage returns the de-duplicated changes that keep accepts of the
// revisions in (from, upTo], where upTo <= to is chosen so that they are at
// most max (a single revision with more is returned whole): a consumer far
// behind catches up in bounded steps. ok is false as for ChangesSince.
func (f *FSM) ChangesPage(from, to uint64, max int, keep func(Change) bool) (changes []Change, upTo uint64, ok bool) {
	return f.changes.page(from, to, max, keep)
}

// SetHistoryBound keeps the change history to at most revisions revisions
// (0 restores the default), so that tests can make a consumer fall off its
// end.
func (f *FSM) SetHistoryBound(revisions int) {
	f.changes.mu.Lock()
	f.changes.maxRevisions = revisions
	f.changes.mu.Unlock()
}
