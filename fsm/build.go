package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	iradix "github.com/hashicorp/go-immutable-radix"
	memdb "github.com/hashicorp/go-memdb"
)

// buildState builds a State holding rows (table -> objects), as a restore
// needs it.
//
// Inserting object by object through memdb costs most of a restore: every
// insert walks each index's radix tree at a random key, and memdb's
// transaction copies the nodes it touches (its cache of writable nodes
// holds 8192, a small part of a 100k-port tree). Instead each index is
// built on its own, from its keys sorted (so the writable path stays
// cached), all indexes in parallel, and the finished trees are set as the
// new MemDB's root. memdb has no API for that last step: setMemDBRoot
// writes its unexported root field, found by reflection and checked at
// start-up; where the field is not as expected, the object-by-object path
// runs instead. TestBuildStateMatchesInsert compares both paths index by
// index.
func buildState(rows map[string][]any) (*State, error) {
	if memdbRootOffset == ^uintptr(0) {
		return insertState(rows)
	}
	st := newState()
	sch := st.db.DBSchema()
	type job struct {
		table, index string
		tree         *iradix.Tree
		err          error
	}
	var jobs []*job
	for table, ts := range sch.Tables {
		for name := range ts.Indexes {
			jobs = append(jobs, &job{table: table, index: name})
		}
	}
	for table := range rows {
		if sch.Tables[table] == nil {
			return nil, fmt.Errorf("rows of unknown table %q", table)
		}
	}
	// The primary keys are needed by every non-unique index of a table.
	ids := make(map[string][][]byte, len(rows))
	for table, objs := range rows {
		keys, err := primaryKeys(sch.Tables[table], objs)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", table, err)
		}
		ids[table] = keys
	}
	// Largest first, so the biggest index does not start last.
	slices.SortFunc(jobs, func(a, b *job) int {
		return len(rows[b.table])*len(sch.Tables[b.table].Indexes) - len(rows[a.table])*len(sch.Tables[a.table].Indexes)
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				j := jobs[i]
				j.tree, j.err = buildIndex(sch.Tables[j.table].Indexes[j.index], rows[j.table], ids[j.table])
			}
		}()
	}
	wg.Wait()
	root := iradix.New().Txn()
	for _, j := range jobs {
		if j.err != nil {
			return nil, fmt.Errorf("table %s, index %s: %w", j.table, j.index, j.err)
		}
		root.Insert([]byte(j.table+"."+j.index), j.tree)
	}
	setMemDBRoot(st.db, root.CommitOnly())
	return st, nil
}

// restoreGCPercent is the GC target while a restore builds a state.
const restoreGCPercent = 1000

var restoreGCMu sync.Mutex

// restoreGC raises the GC target (GOGC) until the returned func is called.
// A restore allocates about twice the state it builds, nearly all of it
// pointer-dense radix nodes that stay live: with the default target the
// collector re-marks the growing trees again and again, which took half of
// a 100k-port restore (BenchmarkSnapshotRestore). The peak heap stays
// bounded by what the restore allocates (about twice the new state's size,
// 580 MiB at 100k ports), since that is all the garbage there is; a
// GOMEMLIMIT still makes the collector run.
// Restores are serialised, so concurrent ones (several FSMs in one test
// process) cannot leave the raised target behind.
func restoreGC() func() {
	restoreGCMu.Lock()
	old := debug.SetGCPercent(restoreGCPercent)
	if old < 0 || old > restoreGCPercent {
		debug.SetGCPercent(old)
	}
	return func() {
		debug.SetGCPercent(old)
		restoreGCMu.Unlock()
	}
}

// insertState is the object-by-object build through a memdb transaction.
func insertState(rows map[string][]any) (*State, error) {
	st := newState()
	txn := st.db.Txn(true)
	defer txn.Abort()
	for _, table := range snapshotTables {
		for _, row := range rows[table] {
			if err := txn.Insert(table, row); err != nil {
				return nil, fmt.Errorf("insert into %s: %w", table, err)
			}
		}
		delete(rows, table)
	}
	for table := range rows {
		return nil, fmt.Errorf("rows of unknown table %q", table)
	}
	txn.Commit()
	return st, nil
}

func primaryKeys(ts *memdb.TableSchema, objs []any) ([][]byte, error) {
	idx, ok := ts.Indexes["id"].Indexer.(memdb.SingleIndexer)
	if !ok {
		return nil, fmt.Errorf("id index is not a single indexer")
	}
	keys := make([][]byte, len(objs))
	var fast fieldCache
	for i, obj := range objs {
		var ok bool
		var key []byte
		var err error
		if sf, isString := idx.(*memdb.StringFieldIndex); isString {
			ok, key, err = fast.stringKey(sf, obj)
		} else {
			ok, key, err = idx.FromObject(obj)
		}
		if err != nil {
			return nil, fmt.Errorf("primary key: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("object missing primary key")
		}
		keys[i] = key
	}
	return keys, nil
}

type indexEntryKV struct {
	key []byte
	obj any
}

// buildIndex computes one index's keys as memdb's Txn.Insert does
// (non-unique keys get the primary key appended; a missing value is skipped
// when the index allows it), sorts them and builds the radix tree.
func buildIndex(is *memdb.IndexSchema, objs []any, ids [][]byte) (*iradix.Tree, error) {
	kvs := make([]indexEntryKV, 0, len(objs))
	var fast fieldCache
	for i, obj := range objs {
		var ok bool
		var vals [][]byte
		var err error
		switch idx := is.Indexer.(type) {
		case *memdb.StringFieldIndex:
			var v []byte
			ok, v, err = fast.stringKey(idx, obj)
			vals = [][]byte{v}
		case memdb.SingleIndexer:
			var v []byte
			ok, v, err = idx.FromObject(obj)
			vals = [][]byte{v}
		case memdb.MultiIndexer:
			ok, vals, err = idx.FromObject(obj)
		default:
			return nil, fmt.Errorf("indexer %T is neither single nor multi", is.Indexer)
		}
		if err != nil {
			return nil, err
		}
		if !ok {
			if is.AllowMissing {
				continue
			}
			return nil, fmt.Errorf("missing value")
		}
		for _, v := range vals {
			if !is.Unique {
				v = append(v, ids[i]...)
			}
			kvs = append(kvs, indexEntryKV{v, obj})
		}
	}
	cmp := func(a, b indexEntryKV) int { return bytes.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(kvs, cmp) {
		slices.SortFunc(kvs, cmp)
	}
	txn := iradix.New().Txn()
	for i, kv := range kvs {
		// Equal keys of one object (a multi-value index listing a value
		// twice) collapse as memdb's inserts would; of two objects, in a
		// unique index, they mean two rows claim one key.
		if is.Unique && i > 0 && bytes.Equal(kvs[i-1].key, kv.key) && kvs[i-1].obj != kv.obj {
			return nil, fmt.Errorf("two rows with key %q", kv.key)
		}
		txn.Insert(kv.key, kv.obj)
	}
	return txn.CommitOnly(), nil
}

// memdbRootOffset is the offset of MemDB's root field (an unsafe.Pointer to
// an *iradix.Tree), or -1 when this memdb version has no such field.
var memdbRootOffset = func() uintptr {
	f, ok := reflect.TypeFor[memdb.MemDB]().FieldByName("root")
	if !ok || f.Type.Kind() != reflect.UnsafePointer {
		return ^uintptr(0)
	}
	return f.Offset
}()

// setMemDBRoot installs root as a fresh, unshared MemDB's whole content.
func setMemDBRoot(db *memdb.MemDB, root *iradix.Tree) {
	p := (*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(db), memdbRootOffset))
	atomic.StorePointer(p, unsafe.Pointer(root))
}

// fieldCache computes memdb.StringFieldIndex keys with the field's index
// looked up once per type: StringFieldIndex.FromObject looks the field up
// by name for every object, and for a field of an embedded struct (Meta's
// ProjectID) that search costs more than the rest of the key.
type fieldCache struct {
	typ  reflect.Type
	path []int
}

func (c *fieldCache) stringKey(idx *memdb.StringFieldIndex, obj any) (bool, []byte, error) {
	v := reflect.Indirect(reflect.ValueOf(obj))
	if v.Kind() != reflect.Struct {
		return idx.FromObject(obj)
	}
	if v.Type() != c.typ {
		f, ok := v.Type().FieldByName(idx.Field)
		if !ok || f.Type.Kind() != reflect.String {
			return idx.FromObject(obj)
		}
		c.typ, c.path = v.Type(), f.Index
	}
	val := v.FieldByIndex(c.path).String()
	if val == "" {
		return false, nil, nil
	}
	if idx.Lowercase {
		val = strings.ToLower(val)
	}
	key := make([]byte, len(val)+1, len(val)+1+36)
	copy(key, val)
	return true, key, nil
}
