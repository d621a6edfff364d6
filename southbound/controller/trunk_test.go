package controller

import (
	"maps"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
	"neutrino/southbound/pipeline"
)

// TestSubportBindings: a plugged parent's subports get virtual ofports
// from SubportOfportMin, skipping real ones, and keep them across passes;
// a subport whose parent is not plugged, or that left the trunk, has none.
func TestSubportBindings(t *testing.T) {
	f := fsm.New(nil)
	idx := uint64(0)
	apply := func(typ fsm.CommandType, body any) {
		t.Helper()
		buf, err := fsm.Encode(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		if r := f.Apply(&raft.Log{Index: idx, Data: buf}).(*fsm.Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{{Meta: fsm.Meta{ID: "n", ProjectID: "p"}, NetworkType: fsm.NetTypeVXLAN, SegmentationID: 5}}})
	var ports []*fsm.Port
	for i, id := range []string{"parent", "s1", "s2", "s3"} {
		ports = append(ports, &fsm.Port{Meta: fsm.Meta{ID: id, ProjectID: "p"}, NetworkID: "n", MACAddress: "fa:16:3e:00:00:0" + string(rune('1'+i))})
	}
	apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports})
	vlan := func(id string, n int) fsm.SubPort {
		return fsm.SubPort{PortID: id, SegmentationType: fsm.SegmentationVLAN, SegmentationID: n}
	}
	apply(fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpCreate, Trunk: &fsm.Trunk{Meta: fsm.Meta{ID: "t", ProjectID: "p"}, PortID: "parent", AdminStateUp: true,
		SubPorts: []fsm.SubPort{vlan("s1", 10), vlan("s2", 20)}}})
	min := pipeline.SubportOfportMin
	prev := map[string]uint32{}

	b := map[string]uint32{"other": 4}
	subportBindings(f.State().Read(), b, prev)
	if !maps.Equal(b, map[string]uint32{"other": 4}) {
		t.Fatalf("parent not plugged: %v", b)
	}
	b = map[string]uint32{"parent": 3, "other": min} // a real ofport in the range
	subportBindings(f.State().Read(), b, prev)
	if want := map[string]uint32{"parent": 3, "other": min, "s1": min + 1, "s2": min + 2}; !maps.Equal(b, want) {
		t.Fatalf("bindings %v, want %v", b, want)
	}
	apply(fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: fsm.OpRemoveSubports, TrunkID: "t", SubPorts: []fsm.SubPort{{PortID: "s1"}}})
	apply(fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: fsm.OpAddSubports, TrunkID: "t", SubPorts: []fsm.SubPort{vlan("s3", 30)}})
	b = map[string]uint32{"parent": 3}
	subportBindings(f.State().Read(), b, prev)
	if want := map[string]uint32{"parent": 3, "s2": min + 2, "s3": min}; !maps.Equal(b, want) {
		t.Fatalf("after remove and add: %v, want %v (s2 keeps its number)", b, want)
	}
}
