package fsm

import (
	"bytes"
	"io"
	"reflect"
	"sync"
	"testing"
)

func TestChangesSince(t *testing.T) {
	f := New(nil)
	if changes, ok := f.ChangesSince(0); !ok || len(changes) != 0 {
		t.Fatalf("empty FSM: %v %v", changes, ok)
	}
	fillChassisTable(t, f, 1)
	apply(t, f, 2, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100), testNetwork("n2", 101)}})
	// The epoch only touches the internal index table.
	apply(t, f, 3, CmdSetEpoch, SetEpochRequest{Epoch: 7})
	apply(t, f, 4, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch2", "ch1"}, Up: false, At: "t4"})
	apply(t, f, 5, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"})
	// A rejected command records nothing and keeps the revision.
	if r := apply(t, f, 6, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"}); r.Err == nil {
		t.Fatal("second delete accepted")
	}

	cases := []struct {
		from uint64
		want []Change
	}{
		{0, []Change{{TableChassis, "ch1"}, {TableChassis, "ch2"}, {TableNetworks, "n1"}, {TableNetworks, "n2"}}},
		{1, []Change{{TableNetworks, "n1"}, {TableNetworks, "n2"}, {TableChassis, "ch2"}, {TableChassis, "ch1"}}},
		{2, []Change{{TableChassis, "ch2"}, {TableChassis, "ch1"}, {TableNetworks, "n1"}}},
		{3, []Change{{TableChassis, "ch2"}, {TableChassis, "ch1"}, {TableNetworks, "n1"}}},
		{4, []Change{{TableNetworks, "n1"}}},
		{5, nil},
	}
	for _, tc := range cases {
		got, ok := f.ChangesSince(tc.from)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ChangesSince(%d) = %v, %v; want %v", tc.from, got, ok, tc.want)
		}
	}
	if got, ok := f.ChangesBetween(1, 3); !ok || !reflect.DeepEqual(got, []Change{{TableNetworks, "n1"}, {TableNetworks, "n2"}}) {
		t.Errorf("ChangesBetween(1, 3) = %v, %v", got, ok)
	}
	// Ahead of the state: not something the history can answer.
	if _, ok := f.ChangesSince(6); ok {
		t.Error("ChangesSince beyond the current revision reported ok")
	}
}

func TestChangesHistoryBounded(t *testing.T) {
	f := New(nil)
	fillChassisTable(t, f, 1)
	last := uint64(1)
	for i := 0; i < maxHistoryRevisions+10; i++ {
		last++
		if r := apply(t, f, last, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: i%2 == 0}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// Over the bound the history drops to 7/8 of it at once.
	oldest := last - maxHistoryRevisions*7/8
	if _, ok := f.ChangesSince(last - maxHistoryRevisions - 1); ok {
		t.Fatalf("ChangesSince(%d) ok after %d revisions", last-maxHistoryRevisions-1, last)
	}
	if changes, ok := f.ChangesSince(oldest); !ok || !reflect.DeepEqual(changes, []Change{{TableChassis, "ch1"}}) {
		t.Fatalf("ChangesSince(%d) = %v, %v", oldest, changes, ok)
	}

	// The number of changes is bounded too; the latest revision stays
	// even when it alone is over the bound.
	var l changeLog
	l.record(1, make([]Change, maxHistoryChanges/2))
	l.record(2, make([]Change, maxHistoryChanges/2))
	if _, ok := l.between(0, 2); !ok {
		t.Fatal("history at the bound dropped a revision")
	}
	l.record(3, []Change{{TableNetworks, "n"}})
	if _, ok := l.between(0, 3); ok || l.base != 1 || l.total != maxHistoryChanges/2+1 {
		t.Fatalf("over the bound: base %d total %d", l.base, l.total)
	}
	l.record(4, make([]Change, maxHistoryChanges+1))
	if got, ok := l.between(3, 4); !ok || len(got) != 1 || len(l.hist) != 1 || l.base != 3 {
		t.Fatalf("huge revision: %d changes, ok %v, %d revisions, base %d", len(got), ok, len(l.hist), l.base)
	}
}

func TestChangesAfterRestore(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	apply(t, f, last+1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n9", 9)}})
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	for _, rev := range []uint64{0, last - 1, last + 1} {
		if _, ok := f.ChangesSince(rev); ok {
			t.Fatalf("ChangesSince(%d) ok after restore at %d", rev, last)
		}
	}
	if changes, ok := f.ChangesSince(last); !ok || len(changes) != 0 {
		t.Fatalf("ChangesSince(restored revision) = %v, %v", changes, ok)
	}
	if r := apply(t, f, last+2, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n10", 10)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if changes, ok := f.ChangesSince(last); !ok || len(changes) == 0 || changes[len(changes)-1] != (Change{TableNetworks, "n10"}) {
		t.Fatalf("changes after restore: %v, %v", changes, ok)
	}
}

// TestChangesConcurrent reads the history while Apply goes on (run with
// -race): whoever sees a revision in the state finds its changes.
func TestChangesConcurrent(t *testing.T) {
	f := New(nil)
	fillChassisTable(t, f, 1)
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			apply(t, f, uint64(2+i), CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: i%2 == 0})
		}
	}()
	for done := false; !done; {
		rev := f.State().Read().Revision()
		done = rev == n+1
		changes, ok := f.ChangesSince(rev - 1)
		if !ok || len(changes) == 0 {
			t.Fatalf("revision %d: changes %v ok %v", rev, changes, ok)
		}
	}
	wg.Wait()
}

func TestPortAndRuleLookups(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	v := f.State().Read()
	if ps := v.PortsOfSecurityGroup("core-sg"); len(ps) != 20 || ps[0].ID != "core-p00" {
		t.Fatalf("ports of core-sg: %d", len(ps))
	}
	if ps := v.PortsOfSecurityGroup("nope"); len(ps) != 0 {
		t.Fatalf("ports of a missing group: %d", len(ps))
	}
	if rs := v.RulesWithRemoteGroup("core-sg"); len(rs) != 1 || rs[0].ID != "core-sg-r2" {
		t.Fatalf("rules with remote core-sg: %v", rs)
	}
	if ps := v.PortsOnChassis(""); len(ps) != 0 {
		t.Fatalf("unbound ports listed as on a chassis: %d", len(ps))
	}
	apply(t, f, last+1, CmdPortBind, PortBindRequest{Bindings: []PortBinding{
		{PortID: "core-p03", Chassis: "ch1"}, {PortID: "core-p01", Chassis: "ch1"}, {PortID: "core-p02", Chassis: "ch2"},
	}})

	// The host index survives a snapshot round trip.
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	for _, ff := range []*FSM{f, g} {
		v := ff.State().Read()
		ps := v.PortsOnChassis("ch1")
		if len(ps) != 2 || ps[0].ID != "core-p01" || ps[1].ID != "core-p03" || len(v.PortsOnChassis("ch2")) != 1 {
			t.Fatalf("ports on ch1: %v", ps)
		}
	}
}
