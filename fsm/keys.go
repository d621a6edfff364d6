package fsm

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Datapath keys. Every number the data path uses to tell objects apart
// (a router's register value and SNAT conntrack zone, a security group
// rule's conjunction id, a provider network's metadata, a flow cookie's
// owner) is a key allocated here, in the replicated state, as OVN
// allocates its tunnel keys: never a hash of the object's id, so two
// objects can never share one.
//
// A keyed object gets the lowest free key of its table when it is first
// inserted (in Apply, so every server computes the same key), keeps it
// for as long as it exists (insert copies the stored key over whatever an
// update carries), and frees it when it is deleted. The table's "key"
// index finds the lowest free key. The index table's "keys.<table>" row
// holds, in one value, the number of keyed objects (low 32 bits: with no
// gap below the highest key, the common case, the lowest free key is the
// highest plus one, one lookup away) and a hint (high 32 bits: every key
// below it is in use, so a walk for a gap starts there, not at 1).
const keyStatePrefix = "keys."

// keyState reads a table's object count and hint (at least 1).
func keyState(v *View, table string) (count, hint uint64) {
	x := v.index(keyStatePrefix + table)
	return x & 0xffffffff, max(x>>32, 1)
}

func setKeyState(txn *memdb.Txn, table string, count, hint uint64) {
	setIndex(txn, keyStatePrefix+table, min(hint, uint64(keyLimits[table]))<<32|count)
}

// Key limits, one per keyed table (the largest key; keys start at 1).
var keyLimits = map[string]uint32{
	// MaxRouterKey: each router key is one SNAT conntrack zone in the
	// pipeline (pipeline.RouterZone).
	TableRouters:            MaxRouterKey,
	TableSecurityGroupRules: ^uint32(0),
	TableNetworks:           ^uint32(0),
	TablePorts:              ^uint32(0),
}

// MaxRouterKey is the largest router key: the cluster holds at most this
// many routers, each owning one SNAT conntrack zone (0xf000-0xfeff for keys
// 1-3840, then 0x7000-0x7fff: the zones ports and firewall zones leave).
const MaxRouterKey uint32 = 0xf00 + 0x1000

// ErrTypeKeysExhausted is the Neutron error type (409) of a create that
// finds no free datapath key.
const ErrTypeKeysExhausted = "DatapathKeysExhausted"

// keyedObject is an object of a table with datapath keys.
type keyedObject interface {
	keyID() string
	keyPtr() *uint32
}

func (n *Network) keyID() string           { return n.ID }
func (n *Network) keyPtr() *uint32         { return &n.DatapathKey }
func (p *Port) keyID() string              { return p.ID }
func (p *Port) keyPtr() *uint32            { return &p.DatapathKey }
func (r *Router) keyID() string            { return r.ID }
func (r *Router) keyPtr() *uint32          { return &r.DatapathKey }
func (r *SecurityGroupRule) keyID() string { return r.ID }
func (r *SecurityGroupRule) keyPtr() *uint32 {
	return &r.DatapathKey
}

// datapathKeyIndexer indexes a keyed object by its key, big-endian so that the
// index iterates in numeric order (memdb's UintFieldIndex writes uvarints,
// which do not sort); an object without a key (0) is not indexed.
type datapathKeyIndexer struct{}

func (datapathKeyIndexer) FromObject(obj any) (bool, []byte, error) {
	k, ok := obj.(keyedObject)
	if !ok {
		return false, nil, fmt.Errorf("key index: %T has no key", obj)
	}
	if *k.keyPtr() == 0 {
		return false, nil, nil
	}
	return true, binary.BigEndian.AppendUint32(nil, *k.keyPtr()), nil
}

func (datapathKeyIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("key index takes one argument")
	}
	k, ok := args[0].(uint32)
	if !ok {
		return nil, fmt.Errorf("key index: argument %T is not a uint32", args[0])
	}
	return binary.BigEndian.AppendUint32(nil, k), nil
}

// keyIndexSchema is the "key" index every keyed table has.
func keyIndexSchema() *memdb.IndexSchema {
	// Unique: the allocator never gives a key twice, and a unique index's
	// entries are the bare keys, so ReverseLowerBound(limit) finds a key
	// equal to the limit.
	return &memdb.IndexSchema{Name: "key", Unique: true, AllowMissing: true, Indexer: datapathKeyIndexer{}}
}

// datapathKeysExhausted is the error of a create that finds no free key.
func datapathKeysExhausted(table string) *Error {
	what := strings.TrimSuffix(strings.ReplaceAll(table, "_", " "), "s")
	return Errorf(CodeConflict, ErrTypeKeysExhausted,
		"No datapath key is free for a new %s: the cluster already holds the maximum of %d.", what, keyLimits[table])
}

// assignKey gives obj, about to be inserted into a keyed table, its key:
// the stored object's if it exists (a key is never reassigned), the key it
// carries if that is free (the create handlers clear it first), else the
// lowest free one. It reports whether obj is new (not stored yet), and
// returns an *Error when no key is free. Objects of tables without keys
// are left alone. The table's count and hint change in insert, once the
// object is in.
func assignKey(txn *memdb.Txn, table string, obj any) (bool, error) {
	limit, ok := keyLimits[table]
	if !ok {
		return false, nil
	}
	k, ok := obj.(keyedObject)
	if !ok {
		return false, nil
	}
	raw, err := txn.First(table, "id", k.keyID())
	if err != nil {
		panic(fmt.Sprintf("fsm: look up %s %s: %v", table, k.keyID(), err))
	}
	if raw != nil {
		if stored := *raw.(keyedObject).keyPtr(); stored != 0 {
			*k.keyPtr() = stored
			return false, nil
		}
	}
	if want := *k.keyPtr(); want != 0 && want <= limit {
		if other, err := txn.First(table, "key", want); err == nil && other == nil {
			return raw == nil, nil
		}
	}
	key, ok := lowestFreeKey(txn, table, limit)
	if !ok {
		return false, datapathKeysExhausted(table)
	}
	*k.keyPtr() = key
	return raw == nil, nil
}

// clearKey makes a create handler's object take the lowest free key
// whatever its request carried.
func clearKey(obj keyedObject) { *obj.keyPtr() = 0 }

// lowestFreeKey returns the lowest key not in use. With no gap below the
// highest key (the count of keyed objects equals it) that is the highest
// plus one, found in one index lookup; otherwise the key index is walked
// from the hint to the first gap.
func lowestFreeKey(txn *memdb.Txn, table string, limit uint32) (uint32, bool) {
	v := View{txn: txn}
	count, next := keyState(&v, table)
	top := uint64(0)
	it, err := txn.ReverseLowerBound(table, "key", limit)
	if err != nil {
		panic(fmt.Sprintf("fsm: key index of %s: %v", table, err))
	}
	if raw := it.Next(); raw != nil {
		top = uint64(*raw.(keyedObject).keyPtr())
	}
	if count >= top {
		if top >= uint64(limit) {
			return 0, false
		}
		return uint32(top + 1), true
	}
	it, err = txn.LowerBound(table, "key", uint32(min(next, uint64(limit))))
	if err != nil {
		panic(fmt.Sprintf("fsm: key index of %s: %v", table, err))
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if uint64(*raw.(keyedObject).keyPtr()) != next {
			break
		}
		next++
	}
	if next > uint64(limit) {
		return 0, false
	}
	return uint32(next), true
}

// keyInserted counts a new keyed object in and moves the hint past its
// key when that was the hint.
func keyInserted(txn *memdb.Txn, table string, obj any) {
	k, ok := obj.(keyedObject)
	if !ok {
		return
	}
	v := View{txn: txn}
	count, hint := keyState(&v, table)
	if key := uint64(*k.keyPtr()); key == hint {
		hint = key + 1
	}
	setKeyState(txn, table, count+1, hint)
}

// freeKey counts obj, about to be deleted, out and lowers the table's
// hint when it frees a key below it.
func freeKey(txn *memdb.Txn, table string, obj any) {
	if _, ok := keyLimits[table]; !ok {
		return
	}
	k, ok := obj.(keyedObject)
	if !ok {
		return
	}
	raw, err := txn.First(table, "id", k.keyID())
	if err != nil || raw == nil {
		return
	}
	key := uint64(*raw.(keyedObject).keyPtr())
	if key == 0 {
		return
	}
	v := View{txn: txn}
	count, hint := keyState(&v, table)
	setKeyState(txn, table, max(count, 1)-1, min(hint, key))
}

// assignRestoredKeys gives keys to the rows of a snapshot written before
// keys existed (an upgrade): per table, the rows without a key in the
// order of their creation (CreateIndex, then id) take the lowest free
// keys. It is a function of the snapshot alone, so every server restoring
// it computes the same keys; and for a history without deletes it is the
// key each object would have got from Apply (creation order, lowest free).
func assignRestoredKeys(rows map[string][]any) error {
	// The counts are recomputed (a snapshot from before keys has none);
	// the hints are kept (without one, 1 is a valid hint).
	states := map[string]*indexEntry{}
	for _, row := range rows[tableIndex] {
		if e, ok := row.(*indexEntry); ok && strings.HasPrefix(e.Key, keyStatePrefix) {
			states[e.Key] = e
		}
	}
	for _, table := range slices.Sorted(maps.Keys(keyLimits)) {
		n := uint64(len(rows[table]))
		if e := states[keyStatePrefix+table]; e != nil {
			e.Value = e.Value&^0xffffffff | n
		} else if n > 0 {
			rows[tableIndex] = append(rows[tableIndex], &indexEntry{Key: keyStatePrefix + table, Value: 1<<32 | n})
		}
	}
	for table, limit := range keyLimits {
		used := map[uint32]bool{}
		var missing []keyedObject
		for _, row := range rows[table] {
			k, ok := row.(keyedObject)
			if !ok {
				return fmt.Errorf("rows of %s: %T has no key", table, row)
			}
			if key := *k.keyPtr(); key != 0 {
				if used[key] {
					return fmt.Errorf("rows of %s: key %d is held twice", table, key)
				}
				used[key] = true
				continue
			}
			missing = append(missing, k)
		}
		if len(missing) == 0 {
			continue
		}
		slices.SortFunc(missing, func(a, b keyedObject) int {
			if c := compareUint(createIndexOf(a), createIndexOf(b)); c != 0 {
				return c
			}
			return strings.Compare(a.keyID(), b.keyID())
		})
		next := uint32(1)
		for _, k := range missing {
			for used[next] {
				next++
			}
			if next == 0 || next > limit {
				return fmt.Errorf("rows of %s: more than %d keyedObject objects", table, limit)
			}
			*k.keyPtr() = next
			used[next] = true
		}
	}
	return nil
}

func createIndexOf(k keyedObject) uint64 {
	switch o := k.(type) {
	case *Network:
		return o.CreateIndex
	case *Port:
		return o.CreateIndex
	case *Router:
		return o.CreateIndex
	case *SecurityGroupRule:
		return o.CreateIndex
	}
	return 0
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
