package fsm

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// State is the replicated store: an in-memory database of immutable objects.
// Restore replaces the whole State and closes the old one's abandon channel,
// so every watcher of the old State knows to re-read.
type State struct {
	db        *memdb.MemDB
	abandonCh chan struct{}
}

func newState() *State {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is static: failing here is a programming error.
		panic(fmt.Sprintf("fsm: bad schema: %v", err))
	}
	return &State{db: db, abandonCh: make(chan struct{})}
}

// AbandonCh is closed when this State is replaced by a restore.
func (s *State) AbandonCh() <-chan struct{} { return s.abandonCh }

// Read returns a consistent read-only view of the state at this instant.
func (s *State) Read() *View { return &View{txn: s.db.Txn(false)} }

// View is a read-only, point-in-time view of the State.
type View struct {
	txn *memdb.Txn
}

func (v *View) index(key string) uint64 {
	raw, err := v.txn.First(tableIndex, "id", key)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*indexEntry).Value
}

// Revision is the Raft index of the last command that changed the state.
func (v *View) Revision() uint64 { return v.index(indexRevision) }

// Epoch is the cluster epoch, 0 until the first leader sets it.
func (v *View) Epoch() uint64 { return v.index(indexEpoch) }

// TableIndex is the Raft index of the last change to a table.
func (v *View) TableIndex(table string) uint64 { return v.index(table) }

// RevisionWatch returns a channel closed when the revision next changes.
func (v *View) RevisionWatch() <-chan struct{} {
	ch, _, err := v.txn.FirstWatch(tableIndex, "id", indexRevision)
	if err != nil {
		panic(fmt.Sprintf("fsm: watch revision: %v", err))
	}
	return ch
}

// Network returns the network with the id, or nil.
func (v *View) Network(id string) *Network {
	return first[*Network](v.txn, TableNetworks, "id", id)
}

// NetworkBySegment returns the network on the segment, or nil.
func (v *View) NetworkBySegment(key string) *Network {
	return first[*Network](v.txn, TableNetworks, "segment", key)
}

// Networks returns every network, ordered by id.
func (v *View) Networks() []*Network {
	return all[*Network](v.txn, TableNetworks, "id")
}

func first[T any](txn *memdb.Txn, table, index string, args ...any) T {
	var zero T
	raw, err := txn.First(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("fsm: lookup %s.%s: %v", table, index, err))
	}
	if raw == nil {
		return zero
	}
	return raw.(T)
}

func all[T any](txn *memdb.Txn, table, index string, args ...any) []T {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("fsm: list %s.%s: %v", table, index, err))
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}
