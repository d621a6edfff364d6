package fsm

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	iradix "github.com/hashicorp/go-immutable-radix"
	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// filledFSM has a row in every table (the round-trip test's state).
func filledFSM(t *testing.T) *FSM {
	t.Helper()
	f := New(nil)
	apply(t, f, 1, CmdSetEpoch, SetEpochRequest{Epoch: 1234})
	var nets []*Network
	for i := 0; i < 50; i++ {
		nets = append(nets, testNetwork(fmt.Sprintf("n%02d", i), 1000+i))
	}
	apply(t, f, 2, CmdNetworkCreate, NetworkCreateRequest{Networks: nets})
	last := fillCoreTables(t, f, 3)
	last = fillChassisTable(t, f, last+1)
	last = fillL3Tables(t, f, last+1)
	last = fillGatewayTables(t, f, last+1)
	last = fillVPNTables(t, f, last+1)
	last = fillLBTables(t, f, last+1)
	last = fillFWTables(t, f, last+1)
	last = fillQuotaTable(t, f, last+1)
	last = fillAgentTable(t, f, last+1)
	last = fillRBACAndPoolTables(t, f, last+1)
	last = fillQoSTable(t, f, last+1)
	last = fillTrunkTable(t, f, last+1)
	fillRequestsTable(t, f, last+1)
	for table := range schema().Tables {
		if it, _ := f.State().db.Txn(false).Get(table, "id"); it.Next() == nil {
			t.Fatalf("table %s is empty", table)
		}
	}
	return f
}

type indexRow struct {
	key string
	obj any
}

// dumpIndexes walks every index tree of a MemDB: what a lookup by any index
// can find, key by key.
func dumpIndexes(t *testing.T, db *memdb.MemDB) map[string][]indexRow {
	t.Helper()
	if memdbRootOffset == ^uintptr(0) {
		t.Fatal("this memdb has no root field: the fast restore path is off")
	}
	root := (*iradix.Tree)(*(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(db), memdbRootOffset)))
	out := map[string][]indexRow{}
	root.Root().Walk(func(k []byte, v any) bool {
		var rows []indexRow
		v.(*iradix.Tree).Root().Walk(func(k []byte, obj any) bool {
			rows = append(rows, indexRow{string(k), obj})
			return false
		})
		out[string(k)] = rows
		return false
	})
	return out
}

func tableRows(t *testing.T, db *memdb.MemDB) map[string][]any {
	t.Helper()
	rows := map[string][]any{}
	txn := db.Txn(false)
	for _, table := range snapshotTables {
		it, err := txn.Get(table, "id")
		if err != nil {
			t.Fatal(err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			rows[table] = append(rows[table], raw)
		}
	}
	return rows
}

// TestBuildStateMatchesInsert: the parallel, sorted index build gives the
// very trees memdb's object-by-object inserts give, for every index of
// every table (keys and objects).
func TestBuildStateMatchesInsert(t *testing.T) {
	f := filledFSM(t)
	rows := tableRows(t, f.State().db)
	fast, err := buildState(rows)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := insertState(tableRows(t, f.State().db))
	if err != nil {
		t.Fatal(err)
	}
	want, got := dumpIndexes(t, slow.db), dumpIndexes(t, fast.db)
	if len(want) == 0 || len(want) != len(got) {
		t.Fatalf("%d index trees built, want %d", len(got), len(want))
	}
	for path, w := range want {
		if !reflect.DeepEqual(w, got[path]) {
			t.Fatalf("index %s differs:\nwant %v\ngot  %v", path, w, got[path])
		}
	}
	// The built state works as a store: lookups, then a write on top.
	v := fast.Read()
	if v.Epoch() != 1234 || v.NetworkBySegment("vxlan/1000") == nil {
		t.Fatalf("lookups in the built state: epoch %d", v.Epoch())
	}
	g := New(nil)
	g.state = fast
	if r := apply(t, g, v.Revision()+1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("late", 7777)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if g.State().Read().Network("late") == nil || g.State().Read().Network("n01") == nil {
		t.Fatal("write after a built state lost a network")
	}
}

// TestRestoreVersion1 reads a snapshot in the first format (one msgpack
// stream of table, row pairs), as servers of earlier builds wrote it.
func TestRestoreVersion1(t *testing.T) {
	f := filledFSM(t)
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, f.State().db.Snapshot(), snapshotV1); err != nil {
		t.Fatal(err)
	}
	var hdr snapshotHeader
	if err := codec.NewDecoderBytes(buf.Bytes(), msgpackHandle).Decode(&hdr); err != nil || hdr.Version != 1 {
		t.Fatalf("header %+v %v", hdr, err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	for _, table := range snapshotTables {
		if want, got := dumpTable(t, f, table), dumpTable(t, g, table); !reflect.DeepEqual(want, got) {
			t.Fatalf("table %s differs after a version 1 restore", table)
		}
	}
}

// TestSnapshotChunks: a table larger than a chunk is split and comes back
// whole.
func TestSnapshotChunks(t *testing.T) {
	f := New(nil)
	var nets []*Network
	for i := 0; i < 3*chunkRows+7; i++ {
		nets = append(nets, testNetwork(fmt.Sprintf("n%05d", i), 1000+i))
	}
	apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: nets})
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, f.State().db.Snapshot(), snapshotV2); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := len(g.State().Read().Networks()); got != len(nets) {
		t.Fatalf("%d networks restored, want %d", got, len(nets))
	}
}

// TestRestoreRejectsBadChunks: a chunk that holds fewer or more rows than
// it says, a duplicate primary key, and an unknown table are errors, never
// a partial state.
func TestRestoreRejectsBadChunks(t *testing.T) {
	encode := func(vals ...any) []byte {
		var buf bytes.Buffer
		enc := codec.NewEncoder(&buf, msgpackHandle)
		for _, v := range vals {
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	hdr := snapshotHeader{Version: snapshotV2}
	n1, n2 := testNetwork("a", 1000), testNetwork("b", 1001)
	dup := testNetwork("a", 1002)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"fewer rows":    {encode(hdr, TableNetworks, 2, encode(n1)), "row of networks"},
		"more rows":     {encode(hdr, TableNetworks, 1, encode(n1, n2)), "more than its 1 rows"},
		"duplicate id":  {encode(hdr, TableNetworks, 2, encode(n1, dup)), "two rows with key"},
		"unknown table": {encode(hdr, "nope", 1, encode(n1)), `unknown table "nope"`},
		"truncated":     {encode(hdr, TableNetworks, 1), "rows of a networks chunk"},
	} {
		t.Run(name, func(t *testing.T) {
			g := New(nil)
			err := g.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore: %v, want an error with %q", err, tc.want)
			}
			if len(g.State().Read().Networks()) != 0 {
				t.Fatal("a failed restore changed the state")
			}
		})
	}
}
