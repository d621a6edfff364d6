package fsm

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func apply(t *testing.T, f *FSM, index uint64, typ CommandType, body any) *Result {
	t.Helper()
	buf, err := Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(*Result)
}

func testNetwork(id string, seg int) *Network {
	return &Network{
		Meta:        Meta{ID: id, ProjectID: "p1", Name: "net-" + id, Tags: []string{"a"}, RevisionNumber: 1, CreatedAt: "2026-11-23T00:00:00Z"},
		NetworkType: NetTypeVXLAN, SegmentationID: seg, MTU: 1450, AdminStateUp: true, Status: "ACTIVE",
	}
}

func TestApplyNetworkLifecycle(t *testing.T) {
	f := New(nil)
	if r := apply(t, f, 5, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}}); r.Err != nil || r.Revision != 5 {
		t.Fatalf("create: %+v", r)
	}
	v := f.State().Read()
	n := v.Network("n1")
	if n == nil || n.CreateIndex != 5 || n.ModifyIndex != 5 || v.Revision() != 5 || v.TableIndex(TableNetworks) != 5 {
		t.Fatalf("after create: %+v revision %d", n, v.Revision())
	}
	upd := n.Copy()
	upd.Name = "renamed"
	if r := apply(t, f, 6, CmdNetworkUpdate, NetworkUpdateRequest{Network: upd, PrevIndex: 5}); r.Err != nil {
		t.Fatalf("update: %v", r.Err)
	}
	// A second update computed from the old version loses the race.
	stale := n.Copy()
	stale.Name = "stale"
	r := apply(t, f, 7, CmdNetworkUpdate, NetworkUpdateRequest{Network: stale, PrevIndex: 5})
	if fe, ok := AsError(r.Err); !ok || fe.Type != ErrTypeStaleUpdate || r.Revision != 6 {
		t.Fatalf("stale update: %+v", r)
	}
	if got := f.State().Read().Network("n1"); got.Name != "renamed" || got.CreateIndex != 5 || got.ModifyIndex != 6 {
		t.Fatalf("after update: %+v", got)
	}
	if r := apply(t, f, 8, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"}); r.Err != nil || r.Revision != 8 {
		t.Fatalf("delete: %+v", r)
	}
	if f.State().Read().Network("n1") != nil {
		t.Fatal("network still there after delete")
	}
}

func TestApplyRejectsAndChangesNothing(t *testing.T) {
	f := New(nil)
	apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	cases := []struct {
		name string
		typ  CommandType
		body any
		want string
	}{
		{"duplicate segment", CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 100)}}, ErrTypeTunnelIDInUse},
		{"duplicate id", CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 101)}}, errTypeNetworkDuplicated},
		// Bulk is all or nothing: n3 is valid but n4 collides with n1.
		{"bulk with one bad", CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n3", 102), testNetwork("n4", 100)}}, ErrTypeTunnelIDInUse},
		{"update missing", CmdNetworkUpdate, NetworkUpdateRequest{Network: testNetwork("nx", 5)}, ErrTypeNetworkNotFound},
		{"delete missing", CmdNetworkDelete, NetworkDeleteRequest{ID: "nx"}, ErrTypeNetworkNotFound},
		{"epoch zero", CmdSetEpoch, SetEpochRequest{}, "InvalidEpoch"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := apply(t, f, uint64(10+i), tc.typ, tc.body)
			fe, ok := AsError(r.Err)
			if !ok || fe.Type != tc.want {
				t.Fatalf("got %v, want %s", r.Err, tc.want)
			}
			v := f.State().Read()
			if r.Revision != 1 || v.Revision() != 1 || len(v.Networks()) != 1 {
				t.Fatalf("state changed: revision %d/%d, %d networks", r.Revision, v.Revision(), len(v.Networks()))
			}
		})
	}
}

func TestEpochSetOnce(t *testing.T) {
	f := New(nil)
	if r := apply(t, f, 1, CmdSetEpoch, SetEpochRequest{Epoch: 42}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, 2, CmdSetEpoch, SetEpochRequest{Epoch: 43}); r.Err == nil {
		t.Fatal("second epoch accepted")
	}
	if e := f.State().Read().Epoch(); e != 42 {
		t.Fatalf("epoch %d", e)
	}
}

func TestApplyPanicsOnGarbage(t *testing.T) {
	for name, data := range map[string][]byte{
		"unknown type": {0xbd, 0x80}, // 0xc0-0xff are ignorable (upgrade.go); 190-191 are RBAC and pools
		"bad body":     {byte(CmdNetworkCreate), 0xc1},
		"empty":        {},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			New(nil).Apply(&raft.Log{Index: 1, Data: data})
		})
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// TestSnapshotRestoreRoundTrip fills every snapshotted table, restores the
// snapshot into a fresh FSM and compares table by table. A table missing
// from snapshotTables or newRow fails here.
func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := New(nil)
	apply(t, f, 1, CmdSetEpoch, SetEpochRequest{Epoch: 1234})
	var nets []*Network
	for i := 0; i < 50; i++ {
		nets = append(nets, testNetwork(fmt.Sprintf("n%02d", i), 1000+i))
	}
	flat := testNetwork("flat", 0)
	flat.NetworkType, flat.PhysicalNetwork = NetTypeFlat, "external"
	nets = append(nets, flat)
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
	last = fillRequestsTable(t, f, last+1)

	for table := range schema().Tables {
		if it, _ := f.State().db.Txn(false).Get(table, "id"); it.Next() == nil {
			t.Fatalf("table %s is empty: the round trip would not cover it", table)
		}
		found := false
		for _, st := range snapshotTables {
			found = found || st == table
		}
		if !found {
			t.Fatalf("table %s is not in snapshotTables", table)
		}
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || sink.cancelled {
		t.Fatalf("persist: %v", err)
	}

	g := New(nil)
	old := g.State()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Fatal("restore did not abandon the old state")
	}
	for _, table := range snapshotTables {
		want := dumpTable(t, f, table)
		got := dumpTable(t, g, table)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("table %s differs after restore:\nwant %v\ngot  %v", table, want, got)
		}
	}
	if v := g.State().Read(); v.Epoch() != 1234 || v.Revision() != last || v.NetworkBySegment("flat/external") == nil ||
		v.Request("p1/key") == nil || v.RequestCount() != 1 {
		t.Fatalf("restored view: epoch %d revision %d", v.Epoch(), v.Revision())
	}
}

func dumpTable(t *testing.T, f *FSM, table string) []any {
	t.Helper()
	it, err := f.State().db.Txn(false).Get(table, "id")
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw)
	}
	return out
}

func TestRestoreRejectsGarbage(t *testing.T) {
	f := New(nil)
	err := f.Restore(io.NopCloser(bytes.NewReader([]byte{0x81, 0xa7, 'V', 'e', 'r', 's', 'i', 'o', 'n', 0x63})))
	if err == nil {
		t.Fatalf("restore of a future version: %v", err)
	}
}

// TestEmptyProjectIsStorable: objects without a project (Neutron's router
// gateway ports, or an API configured with no default project) must not
// crash the replica through the project index.
func TestEmptyProjectIsStorable(t *testing.T) {
	f := New(nil)
	n := testNetwork("n1", 100)
	n.ProjectID = ""
	if r := apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{n}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if f.State().Read().Network("n1") == nil {
		t.Fatal("network without project not stored")
	}
}
