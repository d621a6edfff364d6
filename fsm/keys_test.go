package fsm

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

func testRouter(id string) *Router {
	return &Router{Meta: Meta{ID: id, ProjectID: "p1", Name: id, RevisionNumber: 1}, AdminStateUp: true, Status: "ACTIVE"}
}

func routerKey(t *testing.T, f *FSM, id string) uint32 {
	t.Helper()
	r := f.State().Read().Router(id)
	if r == nil {
		t.Fatalf("router %s not found", id)
	}
	return r.DatapathKey
}

// TestKeysAllocatedLowestFreeAndReused: keys are allocated in Apply, the
// lowest free first, kept across updates whatever the update carries,
// freed on delete and reused by the next create.
func TestKeysAllocatedLowestFreeAndReused(t *testing.T) {
	f := New(nil)
	idx := uint64(1)
	must := func(typ CommandType, body any) {
		t.Helper()
		if r := apply(t, f, idx, typ, body); r.Err != nil {
			t.Fatalf("%s: %v", typ, r.Err)
		}
		idx++
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		r := testRouter(id)
		r.DatapathKey = 77 // a proposer's key is never taken
		must(CmdRouterCreate, RouterCreateRequest{Router: r})
	}
	for i, id := range []string{"r1", "r2", "r3"} {
		if k := routerKey(t, f, id); k != uint32(i+1) {
			t.Fatalf("router %s: key %d, want %d", id, k, i+1)
		}
	}
	must(CmdRouterDelete, RouterDeleteRequest{ID: "r2"})
	cur := f.State().Read().Router("r1")
	upd := cur.Copy()
	upd.Name, upd.DatapathKey = "renamed", 3 // an update cannot move a key
	must(CmdRouterUpdate, RouterUpdateRequest{Router: upd, PrevIndex: cur.ModifyIndex})
	if k := routerKey(t, f, "r1"); k != 1 {
		t.Fatalf("update moved r1's key to %d", k)
	}
	must(CmdRouterCreate, RouterCreateRequest{Router: testRouter("r4")})
	must(CmdRouterCreate, RouterCreateRequest{Router: testRouter("r5")})
	if f.State().Read().Router("r2") != nil {
		t.Fatal("r2 survived its delete")
	}
	if k3, k4, k5 := routerKey(t, f, "r3"), routerKey(t, f, "r4"), routerKey(t, f, "r5"); k3 != 3 || k4 != 2 || k5 != 4 {
		t.Fatalf("after delete: r3 %d r4 %d r5 %d, want 3 2 4", k3, k4, k5)
	}

	// Networks, ports (also the implicit ones) and rules get keys too.
	fillL3Tables(t, f, fillCoreTables(t, f, idx)+1)
	v := f.State().Read()
	seen := map[string]map[uint32]string{}
	check := func(table, id string, k uint32) {
		if k == 0 {
			t.Fatalf("%s %s has no key", table, id)
		}
		if seen[table] == nil {
			seen[table] = map[uint32]string{}
		}
		if other, dup := seen[table][k]; dup {
			t.Fatalf("%s %s and %s share key %d", table, id, other, k)
		}
		seen[table][k] = id
	}
	for _, n := range v.Networks() {
		check(TableNetworks, n.ID, n.DatapathKey)
	}
	for _, p := range v.Ports() {
		check(TablePorts, p.ID, p.DatapathKey)
	}
	for _, r := range v.Routers() {
		check(TableRouters, r.ID, r.DatapathKey)
	}
	for _, r := range v.RulesOfSecurityGroup("core-sg") {
		check(TableSecurityGroupRules, r.ID, r.DatapathKey)
	}
	if gw := v.Port("l3-gw"); gw == nil || gw.DatapathKey == 0 {
		t.Fatalf("gateway port without key: %+v", gw)
	}
	if len(seen[TableSecurityGroupRules]) != 3 || len(seen[TablePorts]) < 24 {
		t.Fatalf("keys: %d rules, %d ports", len(seen[TableSecurityGroupRules]), len(seen[TablePorts]))
	}
}

// TestKeysExhausted: a create that finds no free key is a 409 conflict
// that changes nothing; a delete makes room again.
func TestKeysExhausted(t *testing.T) {
	defer func(old uint32) { keyLimits[TableRouters] = old }(keyLimits[TableRouters])
	keyLimits[TableRouters] = 2
	f := New(nil)
	for i, id := range []string{"r1", "r2"} {
		if r := apply(t, f, uint64(i+1), CmdRouterCreate, RouterCreateRequest{Router: testRouter(id)}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	r := apply(t, f, 3, CmdRouterCreate, RouterCreateRequest{Router: testRouter("r3")})
	e, ok := AsError(r.Err)
	if !ok || e.Code != CodeConflict || e.Type != ErrTypeKeysExhausted {
		t.Fatalf("third router: %v, want a %s conflict", r.Err, ErrTypeKeysExhausted)
	}
	v := f.State().Read()
	if v.Router("r3") != nil || v.Revision() != 2 {
		t.Fatalf("a rejected create changed the state (revision %d)", v.Revision())
	}
	if r := apply(t, f, 4, CmdRouterDelete, RouterDeleteRequest{ID: "r1"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, 5, CmdRouterCreate, RouterCreateRequest{Router: testRouter("r3")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if k := routerKey(t, f, "r3"); k != 1 {
		t.Fatalf("r3 took key %d, want the freed 1", k)
	}
}

// TestRestoreAssignsMissingKeys restores a snapshot written before keys
// existed: every server computes the same keys (creation order, lowest
// free, around keys already held), and creates go on from there.
func TestRestoreAssignsMissingKeys(t *testing.T) {
	rows := map[string][]any{}
	for i, id := range []string{"rc", "ra", "rb"} {
		r := testRouter(id)
		r.CreateIndex, r.ModifyIndex = uint64(10-i), uint64(10-i)
		rows[TableRouters] = append(rows[TableRouters], r)
	}
	held := testRouter("rheld")
	held.CreateIndex, held.DatapathKey = 1, 2
	rows[TableRouters] = append(rows[TableRouters], held)
	for i := range 3 {
		n := testNetwork(fmt.Sprintf("n%d", i), 100+i)
		n.CreateIndex = 5
		rows[TableNetworks] = append(rows[TableNetworks], n)
	}
	rows[tableIndex] = []any{&indexEntry{Key: indexRevision, Value: 20}}
	old, err := insertState(rows)
	if err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := writeSnapshot(&snap, old.db, snapshotVersion); err != nil {
		t.Fatal(err)
	}
	restore := func() *FSM {
		f := New(nil)
		if err := f.Restore(io.NopCloser(bytes.NewReader(snap.Bytes()))); err != nil {
			t.Fatal(err)
		}
		return f
	}
	f, g := restore(), restore()
	// Creation order: rb (8), ra (9), rc (10); key 2 is rheld's.
	want := map[string]uint32{"rheld": 2, "rb": 1, "ra": 3, "rc": 4}
	for id, k := range want {
		if got, other := routerKey(t, f, id), routerKey(t, g, id); got != k || other != k {
			t.Fatalf("router %s: keys %d and %d after restore, want %d", id, got, other, k)
		}
	}
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		if k := f.State().Read().Network(id).DatapathKey; k != uint32(i+1) {
			t.Fatalf("network %s: key %d, want %d", id, k, i+1)
		}
	}
	if r := apply(t, f, 21, CmdRouterCreate, RouterCreateRequest{Router: testRouter("rnew")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if k := routerKey(t, f, "rnew"); k != 5 {
		t.Fatalf("first router after the restore: key %d, want 5", k)
	}
}

// TestKeysMatchLowestFreeModel applies random router creates and deletes
// and checks every allocated key against a model (the lowest key no
// router holds), across the count, hint and index walk paths, and a
// snapshot restore in the middle.
func TestKeysMatchLowestFreeModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := New(nil)
	held := map[uint32]string{}
	ids := map[string]uint32{}
	idx := uint64(0)
	for step := range 3000 {
		idx++
		if len(ids) > 0 && rng.IntN(3) == 0 {
			var victim string
			for id := range ids { // any one; map order does not matter here
				victim = id
				break
			}
			if r := apply(t, f, idx, CmdRouterDelete, RouterDeleteRequest{ID: victim}); r.Err != nil {
				t.Fatal(r.Err)
			}
			delete(held, ids[victim])
			delete(ids, victim)
			continue
		}
		want := uint32(1)
		for held[want] != "" {
			want++
		}
		id := fmt.Sprintf("r%d", step)
		if r := apply(t, f, idx, CmdRouterCreate, RouterCreateRequest{Router: testRouter(id)}); r.Err != nil {
			t.Fatal(r.Err)
		}
		if got := routerKey(t, f, id); got != want {
			t.Fatalf("step %d: router %s got key %d, want the lowest free %d", step, id, got, want)
		}
		held[want], ids[id] = id, want
		if step == 1500 {
			snap, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			sink := &memSink{}
			if err := snap.Persist(sink); err != nil {
				t.Fatal(err)
			}
			f = New(nil)
			if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
				t.Fatal(err)
			}
		}
	}
}
